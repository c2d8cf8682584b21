"""Time series of a simulation run, recorded on virtual time, and the figure and CSV made of them.

A :class:`SimRecorder` is handed to :func:`~mbmsec.sim.world.build_world`; it then sees

* every datagram into and out of the BM-SC and every HTTP request to it (:meth:`node` and
  :meth:`http` wrap the BM-SC's sans-I/O object and HTTP handler; behaviour is unchanged),
* every UE event the world collects (:meth:`add_events`): ``request-sent`` (first attempt or
  retransmission, per profile) and ``msk-installed``,
* a sample every ``bucket`` seconds of virtual time (:meth:`add_sample`, taken by
  :meth:`World.run_until <mbmsec.sim.world.World.run_until>`): how many UEs hold the MSK and
  the MTK the BM-SC uses at that instant.

Counts are kept per bucket of ``bucket`` seconds (index ``floor((t - start) / bucket)``) and shown
per second. The key delivery latency of a UE is the time from its first key request (compact
datagram or 3GPP HTTP request; bootstrapping excluded) that is not yet answered to the next
MSK it installs: retransmissions, give-ups and outages all count into it.

:meth:`SimRecorder.result` freezes everything into :class:`SimSeries`, which renders the figure
(:func:`figure`, four panels, :mod:`.plot`) and the CSV (:meth:`SimSeries.to_csv`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..httpmsg import HttpRequest, HttpResponse
from ..ue import events as ev
from .engine import Address, DatagramNode
from .plot import Panel, Series

__all__ = ["CountingNode", "SimRecorder", "SimSeries", "figure"]

PROFILE_LABEL = {"compact": "compact", "3gpp": "3GPP"}
PROFILE_COLOR = {"compact": ("#0072B2", "#56B4E9"), "3gpp": ("#009E73", "#D55E00")}
MAX_CDF_POINTS = 1000


class CountingNode:
    """A datagram node that forwards to ``inner`` and reports each datagram in and out."""

    def __init__(
        self,
        inner: DatagramNode,
        on_in: Callable[[float], None],
        on_out: Callable[[float, int], None],
    ) -> None:
        self.inner = inner
        self._on_in = on_in
        self._on_out = on_out

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Count one datagram in, then hand it to the inner node."""
        self._on_in(now)
        self.inner.receive_datagram(data, addr, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """The inner node's datagrams, counted."""
        out = self.inner.datagrams_to_send(now)
        if out:
            self._on_out(now, len(out))
        return out

    def get_timer(self) -> float | None:
        """The inner node's timer."""
        return self.inner.get_timer()

    def handle_timer(self, now: float) -> None:
        """Run the inner node's timer."""
        self.inner.handle_timer(now)


@dataclass(frozen=True)
class SimSeries:
    """Everything recorded in one run, times in seconds from the start.

    ``samples``: (t, UEs, UEs holding the current MSK, UEs holding the current MTK).
    ``counts``: name -> per-bucket counts (``requests-<profile>-first``,
    ``requests-<profile>-retry``, ``bmsc-datagrams-in``, ``bmsc-datagrams-out``,
    ``bmsc-http-in``). ``latencies``: profile -> (time of the first request, latency).
    ``msk_changes``: instants at which the BM-SC's current MSK changed. ``requests``: every key
    request as (time, profile, is a retransmission), in time order.
    """

    bucket: float
    duration: float
    profiles: tuple[str, ...]
    samples: tuple[tuple[float, int, int, int], ...]
    counts: dict[str, tuple[int, ...]]
    latencies: dict[str, tuple[tuple[float, float], ...]]
    msk_changes: tuple[float, ...]
    requests: tuple[tuple[float, str, bool], ...] = ()

    def rate(self, name: str) -> tuple[tuple[float, float], ...]:
        """Series ``name`` as (bucket start, count per second), one point per bucket."""
        counts = self.counts.get(name, ())
        return tuple((k * self.bucket, c / self.bucket) for k, c in enumerate(counts))

    def request_counts(self) -> tuple[int, ...]:
        """Key requests (first attempts and retransmissions, every profile) per bucket."""
        names = [n for n in self.counts if n.startswith("requests-")]
        n = len(self.counts[names[0]]) if names else 0
        return tuple(sum(self.counts[m][k] for m in names) for k in range(n))

    def peak_requests(self) -> tuple[float, int]:
        """(bucket start, count) of the bucket with the most key requests (every profile,
        retransmissions included; the earliest on a tie)."""
        counts = self.request_counts()
        if not counts:
            return 0.0, 0
        k = max(range(len(counts)), key=lambda i: (counts[i], -i))
        return k * self.bucket, counts[k]

    def to_csv(self) -> str:
        """The series in long form, one value a row: ``series,t,value`` (t in seconds from the
        start). Rates are per second at the bucket start; ``latency-<profile>`` rows give the
        time of the first request and the latency in seconds."""
        rows = ["series,t,value"]
        for name, col in (("ues-total", 1), ("ues-current-msk", 2), ("ues-current-mtk", 3)):
            rows += [f"{name},{_g(s[0])},{s[col]}" for s in self.samples]
        for name in self.counts:
            rows += [f"{name},{_g(t)},{_g(v)}" for t, v in self.rate(name)]
        for prof, lat in self.latencies.items():
            rows += [f"latency-{prof},{_g(t)},{_g(v)}" for t, v in lat]
        rows += [f"msk-change,{_g(t)},1" for t in self.msk_changes]
        return "\n".join(rows) + "\n"


def _g(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".") if not float(v).is_integer() else str(int(v))


class SimRecorder:
    """Collects the time series of one run (see the module docstring)."""

    def __init__(self, start: float, bucket: float = 1.0) -> None:
        if not (math.isfinite(bucket) and bucket > 0):
            raise ConfigError("the bucket width must be a positive number of seconds")
        self.start = start
        self.bucket = bucket
        self.next_sample = start
        self._samples: list[tuple[float, int, int, int]] = []
        self._counts: dict[str, Counter[int]] = {}
        self._profiles: set[str] = set()
        self._pending: dict[int, float] = {}
        self._latencies: dict[str, list[tuple[float, float]]] = {}
        self._msk: str | None = None
        self._msk_changes: list[float] = []
        self._requests: list[tuple[float, str, bool]] = []

    def _bucket(self, now: float) -> int:
        return max(0, math.floor((now - self.start) / self.bucket + 1e-9))

    def count(self, name: str, now: float, n: int = 1) -> None:
        """Add ``n`` to series ``name`` in the bucket of ``now``."""
        self._counts.setdefault(name, Counter())[self._bucket(now)] += n

    # --- hooks ---------------------------------------------------------------------------------
    def node(self, inner: DatagramNode) -> CountingNode:
        """Wrap the BM-SC node so its datagrams in and out are counted."""
        return CountingNode(
            inner,
            lambda now: self.count("bmsc-datagrams-in", now),
            lambda now, n: self.count("bmsc-datagrams-out", now, n),
        )

    def http(
        self, handler: Callable[[HttpRequest, float], HttpResponse]
    ) -> Callable[[HttpRequest, float], HttpResponse]:
        """Wrap the BM-SC's HTTP handler so its requests are counted."""

        def counted(request: HttpRequest, now: float) -> HttpResponse:
            self.count("bmsc-http-in", now)
            return handler(request, now)

        return counted

    def add_profiles(self, profiles: Iterable[str]) -> None:
        """Declare the UE profiles of the run (their series exist even when empty)."""
        for p in profiles:
            if p not in self._profiles:
                self._profiles.add(p)
                self._counts.setdefault(f"requests-{p}-first", Counter())
                self._counts.setdefault(f"requests-{p}-retry", Counter())
                self._latencies.setdefault(p, [])

    def add_events(self, events: Iterable[tuple[int, ev.UeEvent]], profiles: Sequence[str]) -> None:
        """Take UE events ``(UE index, event)``; ``profiles[i]`` is UE i's profile."""
        for i, e in events:
            prof = profiles[i]
            if isinstance(e, ev.RequestSent) and e.want != "bootstrap":
                kind = "first" if e.attempt == 1 else "retry"
                self.add_profiles((prof,))
                self.count(f"requests-{prof}-{kind}", e.at)
                self._requests.append((e.at - self.start, prof, kind == "retry"))
                self._pending.setdefault(i, e.at)
            elif isinstance(e, ev.MskInstalled):
                since = self._pending.pop(i, None)
                if since is not None:
                    self.add_profiles((prof,))
                    self._latencies[prof].append((since - self.start, e.at - since))

    def add_sample(
        self, now: float, total: int, msk_current: int, mtk_current: int, msk_id: str | None
    ) -> None:
        """Record the UE counts at ``now`` and the BM-SC's current MSK; move the next sample
        one bucket on."""
        t = now - self.start
        self._samples.append((t, total, msk_current, mtk_current))
        if msk_id is not None and self._msk is not None and msk_id != self._msk:
            self._msk_changes.append(t)
        if msk_id is not None:
            self._msk = msk_id
        self.next_sample = self.start + (len(self._samples)) * self.bucket

    def result(self, duration: float) -> SimSeries:
        """Freeze the series of a run of ``duration`` seconds."""
        n = max(1, math.ceil(duration / self.bucket - 1e-9))
        counts = {}
        for name in sorted(self._counts):
            c = self._counts[name]
            counts[name] = tuple(c.get(k, 0) for k in range(n))
        for name in ("bmsc-datagrams-in", "bmsc-datagrams-out", "bmsc-http-in"):
            counts.setdefault(name, (0,) * n)
        return SimSeries(
            bucket=self.bucket,
            duration=duration,
            profiles=tuple(p for p in ("compact", "3gpp") if p in self._profiles)
            + tuple(sorted(self._profiles - {"compact", "3gpp"})),
            samples=tuple(s for s in self._samples if s[0] <= duration + 1e-9),
            counts=counts,
            latencies={p: tuple(v) for p, v in sorted(self._latencies.items())},
            msk_changes=tuple(self._msk_changes),
            requests=tuple(sorted(self._requests)),
        )


def ecdf(
    values: Iterable[float], max_points: int = MAX_CDF_POINTS
) -> tuple[tuple[float, float], ...]:
    """Empirical CDF points (x, fraction <= x) of ``values``, at most ``max_points`` of them
    (evenly spaced quantiles when there are more values), starting at (min, 0)."""
    xs = sorted(v for v in values if math.isfinite(v))
    n = len(xs)
    if not n:
        return ()
    if n <= max_points:
        idx = list(range(n))
    else:
        idx = sorted(
            {min(n - 1, math.ceil((k + 1) * n / max_points) - 1) for k in range(max_points)}
        )
    return ((xs[0], 0.0), *((xs[i], (i + 1) / n) for i in idx))


def burst_window(
    series: SimSeries, before: float = 5.0, after: float = 15.0
) -> tuple[float, float]:
    """A window around the largest burst of key requests after the start-up (after the first
    sample with every UE current; the whole run if there is none): ``before`` seconds before its
    busiest bucket to ``after`` seconds after, inside the run."""
    s = series.samples
    settled = next((x[0] for x in s if x[1] and x[3] == x[1]), 0.0)
    counts = series.request_counts()
    k0 = math.ceil(settled / series.bucket)
    ks = range(k0, len(counts)) if any(counts[k0:]) else range(len(counts))
    k = max(ks, key=lambda i: (counts[i], -i), default=0)
    t = k * series.bucket
    return max(0.0, t - before), min(series.duration, t + series.bucket + after)


def _fine_counts(
    series: SimSeries, window: tuple[float, float], width: float
) -> dict[tuple[str, bool], tuple[tuple[float, float], ...]]:
    """Requests per second in buckets of ``width`` seconds across ``window``, per (profile,
    retransmission), as step points ending at the window's end."""
    a, b = window
    n = max(1, math.ceil((b - a) / width - 1e-9))
    out: dict[tuple[str, bool], list[int]] = {
        (p, r): [0] * n for p in series.profiles for r in (False, True)
    }
    for t, prof, retry in series.requests:
        if a <= t < b and (prof, retry) in out:
            out[(prof, retry)][min(n - 1, int((t - a) / width))] += 1
    return {
        key: _with_end(tuple((a + k * width, c / width) for k, c in enumerate(v)), b)
        for key, v in out.items()
    }


def _seconds(v: float) -> str:
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _with_end(
    points: tuple[tuple[float, float], ...], end: float
) -> tuple[tuple[float, float], ...]:
    """Step series points plus a final point at ``end`` holding the last value."""
    return (*points, (end, points[-1][1])) if points else points


def _ues_note(samples: Sequence[tuple[float, int, int, int]]) -> str:
    """After the first sample with every UE current: the fewest holding the current MTK."""
    first = next((k for k, x in enumerate(samples) if x[1] and x[3] == x[1]), None)
    if first is None:
        return "never every UE current" if samples else ""
    low = min(samples[first:], key=lambda x: (x[3], x[0]))
    t0 = samples[first][0]
    if low[3] == low[1]:
        return f"every UE current from t={t0:g} s on"
    return f"all current at t={t0:g} s; later as few as {low[3]}/{low[1]} (t={low[0]:g} s)"


def figure(
    series: SimSeries,
    spans: Sequence[tuple[float, float, str]] = (),
) -> list[Panel]:
    """The four panels of ``mbmsec sim --plot``: UEs holding the current keys, key requests per
    second (first attempts and retransmissions per profile), the key delivery latency CDF per
    profile, and the BM-SC's datagrams (and HTTP requests) per second. ``spans`` (seconds from
    the start, label) are shaded on the time panels."""
    end = series.duration
    xr = (0.0, end)
    marks = series.msk_changes
    time_kw: dict[str, object] = {
        "x_range": xr,
        "spans": tuple(spans),
        "marks": marks,
        "marks_label": "MSK change",
    }
    s = series.samples
    total = max((x[1] for x in s), default=0)
    ues = Panel(
        key="ues",
        title="UEs holding the keys the BM-SC uses now",
        x_label="virtual time (s)",
        y_label="UEs",
        series=(
            Series(
                "total", "UEs", tuple((x[0], float(x[1])) for x in s), color="#999999", dash=True
            ),
            Series(
                "msk",
                "current MSK",
                tuple((x[0], float(x[2])) for x in s),
                color="#0072B2",
                width=2.2,
            ),
            Series("mtk", "current MTK", tuple((x[0], float(x[3])) for x in s), color="#E69F00"),
        ),
        y_range=None if total else (0.0, 1.0),
        note=_ues_note(s),
        **time_kw,  # type: ignore[arg-type]
    )
    req: list[Series] = []
    for p in series.profiles:
        first, retry = PROFILE_COLOR.get(p, ("#CC79A7", "#000000"))
        label = PROFILE_LABEL.get(p, p)
        req.append(
            Series(
                f"{p}-first",
                f"{label} first attempts",
                _with_end(series.rate(f"requests-{p}-first"), end),
                step=True,
                color=first,
            )
        )
        req.append(
            Series(
                f"{p}-retry",
                f"{label} retransmissions",
                _with_end(series.rate(f"requests-{p}-retry"), end),
                step=True,
                color=retry,
            )
        )
    peak_t, peak_n = series.peak_requests()
    requests = Panel(
        key="requests",
        title="Key requests sent per second (compact: datagrams; 3GPP: HTTP exchanges)",
        x_label="virtual time (s)",
        y_label="requests/s",
        series=tuple(req),
        note=f"all requests: peak {peak_n / series.bucket:g}/s at t={peak_t:g} s" if peak_n else "",
        **time_kw,  # type: ignore[arg-type]
    )
    window = burst_window(series)
    width = series.bucket / 10
    fine = _fine_counts(series, window, width)
    zoom: list[Series] = []
    for p in series.profiles:
        first, retry = PROFILE_COLOR.get(p, ("#CC79A7", "#000000"))
        label = PROFILE_LABEL.get(p, p)
        zoom.append(
            Series(
                f"{p}-first", f"{label} first attempts", fine[(p, False)], step=True, color=first
            )
        )
        zoom.append(
            Series(
                f"{p}-retry", f"{label} retransmissions", fine[(p, True)], step=True, color=retry
            )
        )
    burst = Panel(
        key="burst",
        title=f"Largest burst after start-up, zoomed: key requests per second ({width:g} s bins)",
        x_label="virtual time (s)",
        y_label="requests/s",
        series=tuple(zoom),
        x_range=window,
        marks=tuple(t for t in marks if window[0] <= t <= window[1]),
        marks_label="MSK change",
        spans=tuple(sp for sp in spans if sp[0] < window[1] and sp[1] > window[0]),
    )
    cdf: list[Series] = []
    for p in series.profiles:
        lat = [v for _, v in series.latencies.get(p, ())]
        label = PROFILE_LABEL.get(p, p)
        if lat:
            label += f" (n={len(lat)}, median {_seconds(_median(lat))})"
        cdf.append(
            Series(
                p,
                label,
                ecdf(lat),
                step=True,
                color=PROFILE_COLOR.get(p, ("#CC79A7",))[0],
                width=2.0,
            )
        )
    latency = Panel(
        key="latency",
        title="Key delivery latency: first request to MSK installed (CDF)",
        x_label="seconds (log scale)",
        y_label="fraction of deliveries",
        series=tuple(cdf),
        x_log=True,
        y_range=(0.0, 1.0),
    )
    load = Panel(
        key="bmsc",
        title="BM-SC load",
        x_label="virtual time (s)",
        y_label="per second",
        series=(
            Series(
                "datagrams-in",
                "datagrams in",
                _with_end(series.rate("bmsc-datagrams-in"), end),
                step=True,
                color="#0072B2",
            ),
            Series(
                "datagrams-out",
                "datagrams out",
                _with_end(series.rate("bmsc-datagrams-out"), end),
                step=True,
                color="#D55E00",
            ),
            Series(
                "http-in",
                "HTTP requests in",
                _with_end(series.rate("bmsc-http-in"), end),
                step=True,
                color="#009E73",
            ),
        ),
        **time_kw,  # type: ignore[arg-type]
    )
    return [ues, requests, burst, latency, load]
