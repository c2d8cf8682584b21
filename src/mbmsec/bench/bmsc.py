"""Bench case ``bmsc``: MSK deliveries by the BM-SC over loopback, in both profiles, next to a
TLS-proxy baseline measured in the same run.

Keys are protected end to end by MIKEY, not by a TLS tunnel to a proxy; the baseline exists only
to measure the difference. Set-up (outside every timed part):

1. a server process (:mod:`.bmsc_servers`) starts a real BSF, the real BM-SC driver
   (:class:`~mbmsec.net.bmsc_server.BmscServer`, in-memory store) whose Zn lookups go over HTTP
   to that BSF, and the baseline's key server behind a TLS 1.3 proxy (:mod:`.tls_proxy`);
2. this process bootstraps :data:`DEFAULT_UES` UEs at the BSF (Ub over HTTP, Milenage USIMs);
3. every UE makes one delivery of each profile: this fills the BM-SC's Zn cache (the networked
   path, warm from then on), teaches each UE its MSK ID, and opens the keep-alive connections.

Then each profile runs for ``--seconds`` (split into ``rounds`` alternating rounds, the best
round's rate counts) with the same client concurrency (:data:`DEFAULT_CONCURRENCY` deliveries in
flight, UEs taken round-robin). One delivery = a UE holds a verified, decrypted MSK
(:mod:`.bmsc_ue` says exactly what each profile does). Per profile it reports deliveries/s,
latency p50/p99 (request start to MSK in hand), UDP datagrams and bytes, TCP bytes (HTTP, or TLS
records on the socket), TLS records, new connections and HTTP exchanges per delivery, and the
CPU time per delivery of the server process and of the client process. Every delivered MSK is
checked against the BM-SC's own (SHA-256 fingerprints), and the BM-SC's counters confirm the
deliveries (keys answered, verification messages accepted, proxy connections).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final, TextIO

import aiohttp

from ..errors import ConfigError, MbmsecError
from . import BenchConfig, Rate, Result, register_case
from .bmsc_servers import ServerProcess
from .bmsc_ue import (
    BenchUe,
    ClientEnv,
    Delivery,
    UdpPort,
    bootstrap_ue,
    deliver_3gpp,
    deliver_compact,
    deliver_tls,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_UES",
    "PROFILES",
    "Profile",
    "report",
    "run",
    "run_bench",
]

DEFAULT_UES: Final = 64
DEFAULT_CONCURRENCY: Final = 16
DELIVERY_TIMEOUT: Final = 5.0
SETTLE: Final = 0.02  # poll interval while the servers finish the last datagrams
SETTLE_POLLS: Final = 50
CASE: Final = "bmsc"

Deliver = Callable[[BenchUe, UdpPort, ClientEnv], Awaitable[Delivery]]


@dataclass(frozen=True)
class Profile:
    """One way to deliver an MSK: its name, what it does, and the UE-side function."""

    name: str
    description: str
    deliver: Deliver = field(repr=False)


PROFILES: Final = (
    Profile(
        "compact",
        "compact profile: key request datagram -> BM-SC -> PSK key response (KEMAC under MUK)",
        deliver_compact,
    ),
    Profile(
        "3gpp",
        "3GPP profile, UE waking up: new TCP connection, POST -> 401 challenge, POST with digest "
        "(B-TID/MRK) -> 200, MSK message pushed over UDP, verification message (V bit)",
        partial(deliver_3gpp, keepalive=False),
    ),
    Profile(
        "3gpp-ka",
        "3GPP profile, connection kept: per-UE keep-alive TCP connection and cached digest nonce "
        "(one POST per delivery), push + verification",
        partial(deliver_3gpp, keepalive=True),
    ),
    Profile(
        "tls-proxy",
        "baseline, UE waking up: new TLS 1.3 connection (full handshake, ECDSA P-256 cert) to a "
        "TLS-terminating proxy -> plain HTTP key server; POST -> 401, POST with digest -> 200 "
        "with the MSK in the body",
        partial(deliver_tls, keepalive=False),
    ),
    Profile(
        "tls-proxy-ka",
        "baseline, connection kept: per-UE keep-alive TLS connection and cached digest nonce "
        "(one POST per delivery)",
        partial(deliver_tls, keepalive=True),
    ),
)

RATIOS: Final = (
    ("compact", "3gpp"),
    ("compact", "tls-proxy"),
    ("compact", "3gpp-ka"),
    ("compact", "tls-proxy-ka"),
)

_SUMMED: Final = (
    "udp_datagrams",
    "udp_bytes",
    "tcp_bytes",
    "tls_records",
    "connections",
    "http_exchanges",
)


@dataclass
class _Tally:
    """Everything measured for one profile, over all rounds."""

    rounds: list[Rate] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sums: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    keys: Counter[tuple[str, str]] = field(default_factory=Counter)  # (MSK ref, SHA-256)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    counters: Counter[str] = field(default_factory=Counter)

    @property
    def deliveries(self) -> int:
        return len(self.latencies)

    def add(self, d: Delivery, latency: float) -> None:
        self.latencies.append(latency)
        for name in _SUMMED:
            self.sums[name] += getattr(d, name)
        self.keys[(str(d.msk.ref), hashlib.sha256(d.msk.key).hexdigest())] += 1


async def _workers(
    profile: Profile,
    groups: list[list[BenchUe]],
    ports: list[UdpPort],
    env: ClientEnv,
    seconds: float,
    tally: _Tally | None,
) -> Rate:
    """Run ``len(groups)`` workers delivering back to back for ``seconds`` (with ``tally``
    None: one delivery per UE, the warm-up, raising on the first failure)."""
    stop_at = time.perf_counter() + seconds
    count = 0

    async def worker(ues: list[BenchUe], port: UdpPort) -> None:
        nonlocal count
        if tally is None:
            for ue in ues:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    await profile.deliver(ue, port, env)
            return
        k = 0
        while time.perf_counter() < stop_at:
            ue = ues[k % len(ues)]
            k += 1
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    d = await profile.deliver(ue, port, env)
            except (TimeoutError, MbmsecError, OSError) as exc:
                tally.errors[type(exc).__name__] += 1
                continue
            tally.add(d, d.done - t0)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(g, p) for g, p in zip(groups, ports, strict=True)))
    return Rate(count, time.perf_counter() - start)


async def _run(
    cfg: BenchConfig, servers: ServerProcess, ues: int, concurrency: int
) -> dict[str, _Tally]:
    env = ClientEnv.of(servers.addresses)
    async with aiohttp.ClientSession() as session:
        sem = asyncio.Semaphore(concurrency)

        async def boot(i: int) -> BenchUe:
            async with sem:
                return await bootstrap_ue(i, env, session)

        population = list(await asyncio.gather(*(boot(i) for i in range(ues))))
    width = min(concurrency, ues)
    groups = [population[w::width] for w in range(width)]
    ports = [await UdpPort.open() for _ in range(width)]
    tallies = {p.name: _Tally() for p in PROFILES}
    try:
        for p in PROFILES:  # warm-up: Zn cache, MSK IDs, keep-alive connections
            try:
                await _workers(p, groups, ports, env, 0.0, None)
            except (TimeoutError, MbmsecError, OSError) as exc:
                raise MbmsecError(f"bmsc bench warm-up of {p.name} failed: {exc!r}") from exc
        budget = cfg.seconds / cfg.rounds
        for _ in range(cfg.rounds):
            for p in PROFILES:
                t = tallies[p.name]
                stats0, cpu0, client0 = servers.stats(), servers.cpu(), time.process_time()
                t.rounds.append(await _workers(p, groups, ports, env, budget, t))
                t.client_cpu += time.process_time() - client0
                t.server_cpu += servers.cpu() - cpu0
                t.counters.update(Counter(await _settled(servers)) - Counter(stats0))
    finally:
        for ue in population:
            await ue.close()
        for port in ports:
            port.close()
    return tallies


async def _settled(servers: ServerProcess) -> dict[str, int]:
    """The server counters once they stop changing (the last verification messages are
    processed), polled for at most about a second."""
    prev = servers.stats()
    for _ in range(SETTLE_POLLS):
        await asyncio.sleep(SETTLE)
        cur = servers.stats()
        if cur == prev:
            break
        prev = cur
    return prev


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) in milliseconds, None without samples."""
    if not sorted_values:
        return None
    return 1e3 * sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def run_bench(
    cfg: BenchConfig, *, ues: int = DEFAULT_UES, concurrency: int = DEFAULT_CONCURRENCY
) -> list[Result]:
    """Run the whole case (see the module docstring); one :class:`Result` per profile, the
    measured values in ``extra``. Raises ConfigError for sizes below 1, MbmsecError when the
    servers do not start or the warm-up fails."""
    if ues < 1 or concurrency < 1:
        raise ConfigError("UEs and concurrency must be at least 1")
    servers = ServerProcess(ues)
    try:
        tallies = asyncio.run(_run(cfg, servers, ues, concurrency))
        fingerprints = servers.fingerprints()
    finally:
        servers.close()
    results = [
        _result(p, tallies[p.name], fingerprints, ues, min(ues, concurrency)) for p in PROFILES
    ]
    # the ratios go with the first (compact) result, so --json carries them too
    first = results[0]
    results[0] = replace(first, extra={**first.extra, "ratios": ratios(results)})
    return results


def _result(
    p: Profile, t: _Tally, fingerprints: dict[str, str], ues: int, concurrency: int
) -> Result:
    n = t.deliveries
    lat = sorted(t.latencies)
    right = sum(c for (ref, fp), c in t.keys.items() if fingerprints.get(ref) == fp)
    per = {name: _div(t.sums[name], n) for name in _SUMMED}
    best = max(t.rounds, key=lambda r: r.per_second)
    extra: dict[str, Any] = {
        "description": p.description,
        "deliveries": n,
        "failed": sum(t.errors.values()),
        "errors": dict(t.errors),
        "msk_verified": right,
        "msk_wrong": n - right,
        "p50_ms": _percentile(lat, 0.50),
        "p99_ms": _percentile(lat, 0.99),
        **per,
        "server_cpu_us": _div(1e6 * t.server_cpu, n),
        "client_cpu_us": _div(1e6 * t.client_cpu, n),
        "server_counters": dict(t.counters),
        "rounds": [r.as_dict() for r in t.rounds],
        "ues": ues,
        "concurrency": concurrency,
    }
    return Result(case=CASE, name=p.name, unit="delivery", ours=best, extra=extra)


def _wire_bytes(r: Result) -> float | None:
    udp, tcp = r.extra["udp_bytes"], r.extra["tcp_bytes"]
    return None if udp is None or tcp is None else udp + tcp


def ratios(results: list[Result]) -> dict[str, dict[str, float | None]]:
    """For each pair ``a/b`` of :data:`RATIOS` present: deliveries/s of a over b, and the
    server CPU and bytes per delivery of b over a (how many times more b costs)."""
    by_name = {r.name: r for r in results}
    out: dict[str, dict[str, float | None]] = {}
    for a, b in RATIOS:
        ra, rb = by_name.get(a), by_name.get(b)
        if ra is None or rb is None:
            continue
        out[f"{a}/{b}"] = {
            "rate_a_over_b": _div(ra.ours.per_second, rb.ours.per_second),
            "server_cpu_b_over_a": _div(rb.extra["server_cpu_us"], ra.extra["server_cpu_us"]),
            "bytes_b_over_a": _div(_wire_bytes(rb), _wire_bytes(ra)),
        }
    return out


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _div(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is unknown or ``b`` is zero (nothing measured)."""
    return None if a is None or b is None or b == 0 else a / b


def report(results: list[Result], out: TextIO) -> None:
    """Print the case's own table: rate, latency, wire cost and CPU per profile, then the
    ratios compact/other measured in this run."""
    if not results:
        return
    e0 = results[0].extra
    print(
        f"bmsc: {e0['ues']} UEs, {e0['concurrency']} deliveries in flight for every profile; "
        "servers (BSF, BM-SC, TLS proxy, key server) in one other process, one event loop; "
        "Zn over HTTP to the BSF, cache warm",
        file=out,
    )
    header = (
        f"{'profile':13} {'dlv/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'srv us':>7} {'cli us':>7} "
        f"{'conn':>5} {'http':>5} {'udp':>4} {'udp B':>6} {'tcp B':>6} {'tls rec':>7}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in results:
        e = r.extra
        print(
            f"{r.name:13} {_fmt(r.ours.per_second):>8} {_fmt(e['p50_ms'], 2):>7} "
            f"{_fmt(e['p99_ms'], 2):>7} {_fmt(e['server_cpu_us']):>7} "
            f"{_fmt(e['client_cpu_us']):>7} {_fmt(e['connections'], 2):>5} "
            f"{_fmt(e['http_exchanges'], 2):>5} {_fmt(e['udp_datagrams'], 1):>4} "
            f"{_fmt(e['udp_bytes']):>6} {_fmt(e['tcp_bytes']):>6} {_fmt(e['tls_records'], 1):>7}",
            file=out,
        )
    print(
        "(per delivery: srv/cli us = CPU of the server / client process; conn = new TCP or TLS "
        "connections; http = HTTP exchanges; udp B = datagram payloads; tcp B = TCP payload "
        "bytes both ways, i.e. HTTP messages or TLS records; no IP/UDP/TCP headers)",
        file=out,
    )
    print("\nprofiles:", file=out)
    for r in results:
        print(f"  {r.name:13} {r.extra['description']}", file=out)
    print(
        "\nratios measured side by side in this run (rate: compact deliveries/s over the other's; "
        "server CPU, bytes: the other's cost per delivery over compact's):",
        file=out,
    )
    for key, q in ratios(results).items():
        print(
            f"  {key:22} rate x{_fmt(q['rate_a_over_b'], 2):>6}   "
            f"server CPU x{_fmt(q['server_cpu_b_over_a'], 2):>6}   "
            f"bytes x{_fmt(q['bytes_b_over_a'], 2):>6}",
            file=out,
        )
    total = sum(r.extra["deliveries"] for r in results)
    wrong = sum(r.extra["msk_wrong"] for r in results)
    failed = sum(r.extra["failed"] for r in results)
    print(
        f"\ncorrectness: {total} deliveries, {total - wrong} MSKs equal to the BM-SC's, "
        f"{wrong} wrong, {failed} failed",
        file=out,
    )


@register_case(
    CASE,
    "BM-SC MSK delivery over loopback: compact vs 3GPP profile vs TLS-proxy baseline",
    report=report,
)
def run(cfg: BenchConfig) -> list[Result]:
    """Measure MSK deliveries/s of both profiles and the TLS-proxy baseline (defaults)."""
    return run_bench(cfg)
