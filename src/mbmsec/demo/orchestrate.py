"""Play the demo scenario (:mod:`.scenario`) on the real components (:mod:`.world`).

The scenario follows the BM-SC's key schedule, because MSK and MTK changes happen on a fixed
time grid (:mod:`mbmsec.bmsc.scheduler`). After registration the orchestrator picks the MSK
boundary ``B`` at which the one mid-stream MSK rotation happens, far enough ahead for the phases
before it, and lays them out backwards from it::

    stream        SRTP flows; the MTK rotates every period          [S, U)
    unreachable   one UE drops off for ``outage`` s, then recovers  [U, O)
    bsf-outage    BSF down from O for a while; the BM-SC has lost its Zn answers, the next MSK
                  is offered at B - msk_lead, UEs ask for it and get "KEK unavailable" (MIKEY
                  Error 242 / HTTP 503), retry, and all hold it once the BSF is back
    msk-rotation  B: the MSK changes under the stream; one more MTK change after it
    drain         the stream stops; in-flight packets are counted

Each wait has a deadline; a phase that misses it fails the run with a line naming what was
missing. The whole run is bounded by ``global_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError, MbmsecError
from ..mbms.keys import MskId, MskRef
from ..net.multicast import choose_mode
from ..srtp import Mki, SrtpKey
from ..store.bmsc_protocols import ServiceRecord
from .capture import Capture, http_tap_middleware
from .keylog import KeyLog
from .media import MediaSource
from .observe import Observer
from .progress import Progress
from .report import DemoMetrics, build_report, render_text
from .scenario import (
    PHASES,
    Break,
    DemoConfig,
    Timing,
    make_timing,
    profiles_for,
    rotation_boundary,
)
from .world import (
    KEY_DOMAIN_ID,
    KEY_GROUP,
    MEDIA_GROUP,
    MTK_GROUP,
    SERVICE_ID,
    UeHandle,
    World,
    demo_rng,
    free_udp_port,
)

__all__ = ["Demo", "run_demo"]

Addr = tuple[str, int]
POLL = 0.05
IN_FLIGHT = 0.1  # seconds a datagram may take through a busy loop on loopback
FATAL_CAUSES = ("service_unknown", "not_authorized")  # compact Error 243 / 244: no retry helps
AUTH_FAILURES = ("AkaMacError", "DigestAuthError", "BootstrapError: BSF answered 403")


class _PhaseFailed(Exception):
    """A phase missed its goal; the message is the user-facing reason."""


class Demo:
    """One run of ``mbmsec demo``."""

    def __init__(self, config: DemoConfig, out: TextIO, *, tty: bool | None = None) -> None:
        self.cfg = config
        self.out = out
        self.metrics = DemoMetrics()
        self.progress = Progress(out, tty=tty, enabled=not config.quiet)
        self.progress.state.ues_total = config.ues
        self.capture = Capture() if config.pcap is not None else None
        self.keylog = KeyLog(config.keylog)
        self.t0 = time.time()
        self.world: World | None = None
        self.source: MediaSource | None = None
        self.timing: Timing | None = None
        self.transport = "?"
        self.obs = Observer(self.metrics, self.progress.state, self.capture, self.keylog)
        self._ticker: asyncio.Task[None] | None = None
        self.report: dict[str, Any] | None = None

    # --- helpers ------------------------------------------------------------------------------

    def rel(self, t: float | None = None) -> float:
        """Seconds since the demo started."""
        return (time.time() if t is None else t) - self.t0

    def _phase(self, name: str) -> None:
        self.metrics.begin_phase(name, dict(PHASES)[name], self.rel())
        self.progress.state.phase = name
        self.progress.tick(self.rel(), force=True)

    def _event(self, text: str) -> None:
        self.metrics.event(text)

    async def _wait(
        self,
        what: str,
        done: Callable[[], bool],
        timeout: float,
        *,
        fail_fast: Callable[[], str | None] | None = None,
        detail: Callable[[], str] | None = None,
    ) -> float:
        """Wait until ``done()``; return the seconds it took. Raise _PhaseFailed on timeout or
        when ``fail_fast`` returns a reason."""
        start = time.time()
        while not done():
            if fail_fast is not None:
                reason = fail_fast()
                if reason:
                    raise _PhaseFailed(reason)
            if time.time() - start > timeout:
                extra = f": {detail()}" if detail is not None else ""
                raise _PhaseFailed(f"{what} not done after {timeout:.0f} s{extra}")
            await asyncio.sleep(POLL)
        return time.time() - start

    async def _sleep_until(self, t: float) -> None:
        while time.time() < t:
            await asyncio.sleep(min(POLL, max(0.0, t - time.time())))

    def _on_srtp_key(self, key: SrtpKey) -> None:
        changes = self.source.key_changes if self.source is not None else 1
        self.obs.on_srtp_key(key, changes)

    def _held(self, mki: Mki, index: int) -> None:
        assert self.world is not None
        for h in self.holders(mki):
            if h.expecting and h.runner.reachable:
                h.counters.expected.add(index)

    # --- state queries ------------------------------------------------------------------------

    def current_mki(self, now: float | None = None) -> Mki | None:
        """The MKI of the service's current MTK at the BM-SC."""
        assert self.world is not None and self.world.bmsc is not None
        sched = self.world.bmsc.core.scheduler
        svc = sched.service(SERVICE_ID)
        mtk = None if svc is None else sched.current_mtk(svc, now or time.time())
        return None if mtk is None else Mki(mtk.msk.msk_id.value, mtk.mtk_id)

    def holders(self, mki: Mki | None) -> list[UeHandle]:
        """The UEs whose key store holds the MTK named by ``mki`` (what the UE *has*, whether
        or not its SRTP path uses it: a key held but not used shows up as missed packets)."""
        assert self.world is not None
        if mki is None:
            return []
        ref = MskRef(KEY_DOMAIN_ID, MskId.from_int(mki.msk_id))
        return [h for h in self.world.ues if h.client.srtp_key(ref, mki.mtk_id) is not None]

    def _missing(self, mki: Mki | None) -> str:
        assert self.world is not None
        have = {h.name for h in self.holders(mki)}
        lacking = [h for h in self.world.ues if h.name not in have]
        names = ", ".join(f"{h.name} ({_why(h)})" for h in lacking[:4])
        more = f" and {len(lacking) - 4} more" if len(lacking) > 4 else ""
        return f"{len(lacking)} UE(s) lack the current key: {names}{more}"

    async def _tick_loop(self) -> None:
        while True:
            st = self.progress.state
            if self.world is not None and self.world.bmsc is not None:
                st.ues_current = len(self.holders(self.current_mki()))
                self.obs.log_schedule_keys(self.world.bmsc.core, SERVICE_ID)
            if self.source is not None:
                st.srtp_sent = self.source.sent
                self.metrics.srtp_sent = self.source.sent
                self.metrics.srtp_octets = self.source.octets
            if self.world is not None:
                st.srtp_decrypted = sum(len(h.counters.decrypted) for h in self.world.ues)
            self.progress.tick(self.rel())
            await asyncio.sleep(0.1)

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Play the scenario; return the report dictionary (also kept in :attr:`report`)."""
        quiet = _quiet_logs()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        tmp: tempfile.TemporaryDirectory[str] | None = None
        try:
            if self.cfg.workdir is None:
                tmp = tempfile.TemporaryDirectory(prefix="mbmsec-demo-")
                workdir = Path(tmp.name)
            else:
                workdir = self.cfg.workdir
                workdir.mkdir(parents=True, exist_ok=True)
            try:
                await asyncio.wait_for(self._play(workdir), timeout=self.cfg.global_timeout)
            except TimeoutError:
                phase = self.metrics.current_phase
                where = f" in phase {phase.name}" if phase else ""
                self.metrics.fail(
                    f"global timeout: the demo did not finish within "
                    f"{self.cfg.global_timeout:.0f} s{where}"
                )
            except _PhaseFailed as exc:
                self.metrics.fail(str(exc))
            except (OSError, MbmsecError) as exc:  # a socket the host refuses, a bad setting
                self.metrics.fail(f"{type(exc).__name__}: {exc}")
            finally:
                await self._stop_all()
        finally:
            if self._ticker is not None:
                self._ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._ticker
            if tmp is not None:
                tmp.cleanup()
            quiet()
        self.progress.close(self.rel())
        return self._finish()

    async def _stop_all(self) -> None:
        if self.source is not None:
            await self.source.stop()
            self.metrics.srtp_sent = self.source.sent
            self.metrics.srtp_octets = self.source.octets
        if self.world is not None:
            await self.world.close()
        self.metrics.end_phase(self.rel())

    def _finish(self) -> dict[str, Any]:
        report = build_report(
            self.metrics,
            config=self.cfg.summary(),
            transport=self.transport,
            duration=self.rel(),
        )
        if self.capture is not None and self.cfg.pcap is not None:
            self.cfg.pcap.write_bytes(self.capture.pcap_bytes())
            report["capture"] = {
                "file": str(self.cfg.pcap),
                "datagrams": self.capture.stats.datagrams,
                "http_exchanges": self.capture.stats.http_exchanges,
                "tshark": self._tshark_hint(),
            }
        if self.cfg.keylog is not None:
            report["keylog"] = {"file": str(self.cfg.keylog), "entries": len(self.keylog.entries)}
        self.report = report
        return report

    def _tshark_hint(self) -> str:
        assert self.cfg.pcap is not None
        opts = ["-o rtp.heuristic_rtp:TRUE"]
        w = self.world
        if w is not None and w.bmsc is not None and w.bmsc.udp_address is not None:
            if w.bmsc.udp_address[1] != 2269:
                opts.append(f"-d udp.port=={w.bmsc.udp_address[1]},mikey")
            for url in w.bmsc.urls:
                port = int(url.rsplit(":", 1)[1])
                if port not in (8080, 8088):
                    opts.append(f"-d tcp.port=={port},http")
        if w is not None and w.bsf_listen[1] not in (8080, 8088):
            opts.append(f"-d tcp.port=={w.bsf_listen[1]},http")
        return f"tshark -r {self.cfg.pcap} " + " ".join(opts)

    async def _play(self, workdir: Path) -> None:
        await self._setup(workdir)
        await self._bootstrap()
        await self._register()
        boundary = await self._stream()
        await self._unreachable(boundary)
        await self._bsf_outage(boundary)
        await self._msk_rotation(boundary)
        await self._drain()

    # --- phases -------------------------------------------------------------------------------

    async def _setup(self, workdir: Path) -> None:
        cfg = self.cfg
        self._phase("setup")
        multicast = choose_mode(force_unicast=cfg.force_unicast)
        if multicast:
            self.transport = "multicast"
        elif cfg.force_unicast:
            self.transport = "unicast fan-out"
            self.progress.message("multicast disabled (--unicast): unicast fan-out to each UE")
        else:
            self.transport = "unicast fan-out"
            self.progress.message(
                "loopback multicast is not available on this host: MTK messages and SRTP go "
                "by unicast fan-out to each UE"
            )
        self._event(f"transport for MTK messages and SRTP: {self.transport}")
        world = World(workdir=workdir, rng=demo_rng, multicast=multicast)
        self.world = world
        profiles = profiles_for(cfg.ues, cfg.profile)
        impis = [f"ue{i:03d}@demo.mbmsec.test" for i in range(cfg.ues)]
        world.provision(impis)
        self._event(f"HSS: {len(impis)} subscribers provisioned (SQLite in a temp dir)")
        world.bsf_middlewares.append(http_tap_middleware(self.obs.bsf_http))
        await world.start_bsf()
        self._event(f"BSF listening on {world.bsf_url}")
        now = time.time()
        timing = make_timing(self.cfg, now)
        self.timing = timing
        service = ServiceRecord(
            service_id=SERVICE_ID,
            key_domain_id=KEY_DOMAIN_ID,
            key_group=KEY_GROUP,
            group_host=MTK_GROUP,
            group_port=free_udp_port(),
            msk_lifetime=timing.msk_lifetime,
            mtk_lifetime=timing.mtk_period,
            msk_lead=timing.msk_lead,
            mtk_lead=timing.mtk_lead,
            announce_interval=timing.announce_interval,
            start=timing.start,
        )
        token = world.zn_token
        if cfg.break_ is Break.ZN_CREDENTIALS:
            token = "not-" + token
            self._event("--break zn-credentials: the BM-SC is given a Zn password the BSF refuses")
        bmsc = await world.start_bmsc(service, token, [http_tap_middleware(self.obs.bmsc_http)])
        bmsc.tap = self.obs.bmsc_tap
        self._event(f"BM-SC: MIKEY udp {bmsc.udp_address}, HTTP {' '.join(bmsc.urls)}")
        broken = cfg.ues - 1 if cfg.break_ is Break.WRONG_K else None
        for i, (impi, prof) in enumerate(zip(impis, profiles, strict=True)):
            counters = self.metrics.add_ue(f"ue{i:03d}", prof)
            k_override = None
            if i == broken:
                k_override = demo_rng(16)
                self._event(f"--break wrong-k: ue{i:03d}'s USIM gets a K the HSS does not have")
            h = await world.start_ue(
                i,
                impi,
                prof,
                timing,
                counters,
                k_override=k_override,
                on_event=self.obs.on_ue_event,
                tap=self.obs.ue_tap,
            )
            self.obs.by_addr[h.mikey_address] = h
        media_group = (MEDIA_GROUP, free_udp_port())
        for h in world.ues:
            await h.sink.start(media_group if multicast else None)
        self.source = MediaSource(
            bmsc.core,
            SERVICE_ID,
            group=media_group,
            multicast=multicast,
            interval=self.cfg.media_interval,
            ssrc=int.from_bytes(demo_rng(4), "big"),
            destinations=lambda: [h.sink.address for h in world.ues if h.sink.address],
            held=self._held,
            on_key=self._on_srtp_key,
            tap=self.obs.udp_tap,
        )
        counts = {p: profiles.count(p) for p in sorted(set(profiles))}
        self._event(
            f"{cfg.ues} UEs started ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
            f"MTK period {timing.mtk_period:g} s, MSK period {timing.msk_lifetime:g} s"
        )
        self.progress.state.ues_total = cfg.ues

    async def _bootstrap(self) -> None:
        assert self.world is not None
        world = self.world
        self._phase("bootstrap")

        def failed() -> str | None:
            for h in world.ues:
                bad = [r for r in h.bootstrap_failures if r.startswith(AUTH_FAILURES)]
                if bad:
                    return (
                        f"{h.name} cannot bootstrap: {bad[0]} - its USIM and the HSS disagree "
                        f"on the subscriber key K"
                    )
            return None

        took = await self._wait(
            "bootstrap",
            lambda: all(h.btid is not None for h in world.ues),
            self.cfg.phase_deadline,
            fail_fast=failed,
            detail=lambda: _list(h.name for h in world.ues if h.btid is None),
        )
        self._event(
            f"{len(world.ues)} UEs bootstrapped over Ub (HTTP Digest AKA) in {took:.2f} s, "
            f"{self.obs.ub_exchanges} HTTP exchanges"
        )

    async def _register(self) -> None:
        assert self.world is not None
        world = self.world
        self._phase("register")
        start = time.time()

        def failed() -> str | None:
            refused = self.obs.zn_refused
            if refused and (any(h.refused for h in world.ues) or time.time() - start > 3.0):
                return (
                    f"the BSF refused the BM-SC's Zn requests ({refused} x HTTP 401: NAF "
                    "credentials not accepted), so no UE can get keys"
                )
            for h in world.ues:
                fatal = [c for _, c in h.refused if c.startswith(FATAL_CAUSES)]
                if fatal:
                    return f"{h.name}: the BM-SC refused its key request: {fatal[0]}"
            return None

        took = await self._wait(
            "registration",
            lambda: len(self.holders(self.current_mki())) == len(world.ues),
            self.cfg.phase_deadline,
            fail_fast=failed,
            detail=lambda: self._missing(self.current_mki()),
        )
        regs = sum(1 for h in world.ues if h.profile == "3gpp")
        self._event(
            f"all {len(world.ues)} UEs hold the current MSK and MTK after {took:.2f} s "
            f"({len(world.ues) - regs} by compact key request, {regs} by HTTP registration + "
            f"MSK push)"
        )

    async def _stream(self) -> float:
        assert self.world is not None and self.source is not None and self.timing is not None
        t = self.timing
        world = self.world
        self._phase("stream")
        s = time.time()
        boundary = rotation_boundary(self.cfg, t, s)
        self.source.start()
        until = boundary - t.msk_lead - 0.2 * t.mtk_period - self.cfg.outage - 1.5 * t.mtk_period
        first = self.current_mki()
        await self._sleep_until(until)
        mki = self.current_mki()
        if first is not None and mki is not None and mki.msk_id != first.msk_id:
            self.metrics.msk_rotations += 1
        await self._wait(
            "stream",
            lambda: len(self.holders(self.current_mki())) == len(world.ues),
            3.0 * t.mtk_period,
            detail=lambda: self._missing(self.current_mki()),
        )
        self._event(
            f"{self.source.sent} SRTP packets sent, {self.source.key_changes - 1} MTK "
            f"rotation(s); every UE follows the current MTK"
        )
        return boundary

    async def _unreachable(self, boundary: float) -> None:
        assert self.world is not None and self.timing is not None
        t = self.timing
        self._phase("unreachable")
        victim = self.world.ues[1 if len(self.world.ues) > 1 else 0]
        before = self.current_mki()
        # Packets already in flight when the UE drops off are not held against it: stop
        # expecting first, let the loopback drain, then cut the UE off (and the reverse).
        victim.expecting = False
        await asyncio.sleep(IN_FLIGHT)
        victim.runner.reachable = False
        self._event(f"{victim.name} ({victim.profile}) unreachable for {self.cfg.outage:g} s")
        await asyncio.sleep(self.cfg.outage)
        victim.runner.reachable = True
        await asyncio.sleep(IN_FLIGHT)
        victim.expecting = True
        back = time.time()
        took = await self._wait(
            f"{victim.name} recovery",
            lambda: victim in self.holders(self.current_mki()),
            3.0 * t.mtk_period + 1.0,
            detail=lambda: self._missing(self.current_mki()),
        )
        changed = before != self.current_mki()
        self._event(
            f"{victim.name} back: it holds the current MTK {took:.2f} s after returning"
            + (" (the MTK changed while it was away)" if changed else "")
        )
        deadline = boundary - t.msk_lead - 0.2 * t.mtk_period
        if back > deadline:
            self._event("note: recovery ran into the BSF outage window")

    async def _bsf_outage(self, boundary: float) -> None:
        assert self.world is not None and self.timing is not None
        world = self.world
        t = self.timing
        await self._sleep_until(boundary - t.msk_lead - 0.2 * t.mtk_period)
        self._phase("bsf-outage")
        refused_before = sum(len(h.refused) for h in world.ues)
        await world.stop_bsf()
        world.forget_zn_answers()
        down = 0.5 * t.msk_lead
        self._event(
            f"BSF stopped for {down:g} s; the BM-SC dropped its cached Zn answers; the next MSK "
            f"is offered {t.msk_lead:g} s before it starts"
        )
        await asyncio.sleep(down)
        await world.start_bsf()
        causes: dict[str, int] = {}
        for h in world.ues:
            for _, c in h.refused:
                causes[c] = causes.get(c, 0) + 1
        refused = sum(len(h.refused) for h in world.ues) - refused_before
        self._event(
            f"BSF back on {world.bsf_url}; {refused} request(s) got an error cause meanwhile"
            + (f" ({_causes(causes)})" if causes else "")
        )
        if refused == 0:
            raise _PhaseFailed("no key request met the BSF outage (nothing got an error cause)")
        nxt = self._next_msk_ref(boundary)

        def all_have_next() -> bool:
            return all(h.client.keys.has_msk(nxt) for h in world.ues)

        took = await self._wait(
            "recovery after the BSF outage",
            all_have_next,
            boundary - time.time() + 3.0 * t.mtk_period,
            detail=lambda: _list(h.name for h in world.ues if not h.client.keys.has_msk(nxt)),
        )
        early = boundary - time.time()
        self._event(
            f"every UE holds the next MSK {nxt.msk_id} {took:.2f} s after the BSF returned"
            + (f", {early:.1f} s before it starts" if early > 0 else "")
        )

    def _next_msk_ref(self, boundary: float) -> Any:
        assert self.world is not None and self.world.bmsc is not None
        sched = self.world.bmsc.core.scheduler
        svc = sched.service(SERVICE_ID)
        assert svc is not None
        m = sched.next_msk(svc, boundary - 0.001)
        if m is None:
            raise _PhaseFailed("the BM-SC did not offer the next MSK")
        return m.ref

    async def _msk_rotation(self, boundary: float) -> None:
        assert self.world is not None and self.timing is not None and self.source is not None
        t = self.timing
        world = self.world
        await self._sleep_until(boundary)
        self._phase("msk-rotation")
        self.metrics.msk_rotations += 1
        mki = self.current_mki(boundary + 0.01)
        await self._wait(
            "MSK rotation",
            lambda: len(self.holders(self.current_mki())) == len(world.ues),
            3.0 * t.mtk_period,
            detail=lambda: self._missing(self.current_mki()),
        )
        await self._sleep_until(boundary + t.mtk_period + 0.3 * t.mtk_period)
        await self._wait(
            "MTK change after the MSK rotation",
            lambda: len(self.holders(self.current_mki())) == len(world.ues),
            2.0 * t.mtk_period,
            detail=lambda: self._missing(self.current_mki()),
        )
        self._event(
            f"MSK changed at {self.rel(boundary):.2f} s to MSK ID "
            f"{mki.msk_id:08x} (MKI {_mki(mki)}); every UE decrypts under the new MSK"
            if mki is not None
            else "MSK changed; every UE decrypts under the new MSK"
        )

    async def _drain(self) -> None:
        assert self.source is not None
        self._phase("drain")
        await self.source.stop()
        await asyncio.sleep(0.3)
        self.metrics.srtp_sent = self.source.sent
        self.metrics.srtp_octets = self.source.octets
        self.metrics.mtk_rotations = max(0, self.source.key_changes - 1)
        self._event(f"stream stopped after {self.source.sent} packets")
        self.metrics.end_phase(self.rel())


def _mki(mki: Mki) -> str:
    return mki.encode().hex()


def _why(h: UeHandle) -> str:
    if not h.runner.reachable:
        return "unreachable"
    if h.bootstrap_failures and h.btid is None:
        return f"bootstrap: {h.bootstrap_failures[-1]}"
    if h.refused:
        return f"refused: {h.refused[-1][1]}"
    if h.gave_up:
        return f"gave up: {h.gave_up[-1]}"
    return "waiting"


def _list(names: Any, limit: int = 6) -> str:
    items = list(names)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _causes(causes: dict[str, int]) -> str:
    return ", ".join(f"{n} x {c}" for c, n in sorted(causes.items()))


def _quiet_logs() -> Callable[[], None]:
    """Keep the servers' log lines off the demo's output; return the undo function."""
    root = logging.getLogger("mbmsec")
    saved = (root.level, root.propagate, list(root.handlers))
    root.handlers = [logging.NullHandler()]
    root.propagate = False

    def undo() -> None:
        root.setLevel(saved[0])
        root.propagate = saved[1]
        root.handlers = saved[2]

    return undo


def run_demo(config: DemoConfig, out: TextIO | None = None, *, tty: bool | None = None) -> int:
    """Run the demo, print the report (and write the JSON); return the exit status.

    0: the verdict is PASS; 1: FAIL (including the global timeout). Raises ConfigError (exit
    2 in the CLI) when an output file cannot be written, before anything starts.
    """
    import json

    for what, path in (("--json", config.json), ("--pcap", config.pcap)):
        if path is not None:
            try:
                path.touch()
            except OSError as exc:
                raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    stream = out if out is not None else sys.stdout
    try:
        demo = Demo(config, stream, tty=tty)
    except OSError as exc:
        raise ConfigError(f"--keylog {config.keylog}: {exc.strerror or exc}") from None
    report = asyncio.run(demo.run())
    if not config.quiet or not report["verdict"]["ok"]:
        stream.write(render_text(report))
    if "capture" in report:
        stream.write(f"capture written: {report['capture']['tshark']}\n")
    if config.json is not None:
        config.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    stream.flush()
    return 0 if report["verdict"]["ok"] else 1
