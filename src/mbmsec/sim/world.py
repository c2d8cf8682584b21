"""A simulated MBMS deployment: HSS + BSF, one BM-SC, N UEs, on the virtual network.

Every node is the real sans-I/O object (:class:`~mbmsec.gba.bsf.Bsf`,
:class:`~mbmsec.bmsc.core.BmscCore`, :class:`~mbmsec.ue.client.UeKeyClient`); only the network
between them is simulated (:mod:`.engine`). The BSF answers Ub as the HTTP server ``"bsf"``;
the BM-SC reaches it over Zn through :class:`SwitchableZn`, which turns a BSF outage into the
BsfUnreachableError a real Zn client raises. The BM-SC answers UDP at :data:`BMSC_ADDR` and
HTTP as the server ``"bmsc"``; each UE sits at its own address on port 2269 and joins the
multicast group of every service it wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..bmsc.core import BmscConfig, BmscCore
from ..bmsc.zn import LocalZnLookup
from ..errors import BsfUnreachableError
from ..gba.bsf import Bsf, BsfConfig, NafCredential
from ..gba.client import BootstrapClient, GbaUicc
from ..gba.hss import Hss, make_subscriber
from ..gba.kdf import UA_MBMS, naf_id
from ..gba.zn import ZnAnswer
from ..mbms.keys import key_domain_id
from ..mbms.messages import MIKEY_PORT
from ..pcap import PcapWriter
from ..store.bmsc_memory import MemoryBmscStore
from ..store.bmsc_protocols import ServiceRecord
from ..store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore
from ..ue.client import ServiceConfig, UeConfig, UeKeyClient
from ..ue.events import UeEvent
from ..ue.retry import RetryPolicy
from .engine import Address, LinkProfile, Simulator
from .metrics import SimRecorder

BSF_DOMAIN = "bsf.sim.mbmsec.test"
BMSC_FQDN = "bmsc.sim.mbmsec.test"
BMSC_ADDR: Address = ("10.255.0.1", MIKEY_PORT)
ZN_USER = "bmsc"
ZN_SECRET = "sim-zn-secret"  # noqa: S105 - simulated NAF credential
KD = key_domain_id("001", "01")


class SwitchableZn:
    """Zn lookups against the in-process BSF that fail while the BSF is down."""

    def __init__(self, inner: LocalZnLookup) -> None:
        self.inner = inner
        self.up = True
        self.failures = 0

    def lookup(self, btid: str, now: float) -> ZnAnswer:
        """The BSF's answer, or BsfUnreachableError during an outage."""
        if not self.up:
            self.failures += 1
            raise BsfUnreachableError("BSF unreachable (simulated outage)")
        return self.inner.lookup(btid, now)


def ue_key(i: int) -> bytes:
    """The USIM K of simulated UE ``i`` (distinct per UE, fixed)."""
    return (0x465B5CE8B199B49FAA5F0A2EE238A600 + i).to_bytes(16, "big")


OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")


def ue_addr(i: int) -> Address:
    """The address of simulated UE ``i``."""
    return (f"10.{1 + i // 62500}.{(i // 250) % 250}.{1 + i % 250}", MIKEY_PORT)


@dataclass
class World:
    """The nodes of one simulated deployment."""

    sim: Simulator
    bsf: Bsf
    zn: SwitchableZn
    core: BmscCore
    services: list[ServiceRecord]
    ues: list[UeKeyClient] = field(default_factory=list)
    events: list[tuple[int, UeEvent]] = field(default_factory=list)
    pcap: PcapWriter | None = None
    recorder: SimRecorder | None = None

    def set_bsf_up(self, up: bool) -> None:
        """Start or end a BSF outage (Ub and Zn)."""
        self.sim.set_http_server_up("bsf", up)
        self.zn.up = up

    def collect_events(self) -> list[tuple[int, UeEvent]]:
        """Drain every UE's events into :attr:`events`; return the new ones."""
        new = []
        for i, ue in enumerate(self.ues):
            while (e := ue.next_event()) is not None:
                new.append((i, e))
        self.events.extend(new)
        if self.recorder is not None and new:
            self.recorder.add_events(new, [ue.config.profile for ue in self.ues])
        return new

    def run_until(self, t: float) -> None:
        """Advance the simulation to ``t`` and collect events. With a :attr:`recorder`, stop at
        each of its sample instants on the way to count the UEs holding the current keys."""
        rec = self.recorder
        while rec is not None and rec.next_sample <= t:
            self.sim.run_until(rec.next_sample)
            self.collect_events()
            self.sample()
        self.sim.run_until(t)
        self.collect_events()

    def sample(self) -> None:
        """Give the recorder the UEs holding the MSK and the MTK the BM-SC uses now for the
        first service."""
        if self.recorder is None:
            return
        svc = self.services[0]
        now = self.sim.now
        mtk = self.core.scheduler.current_mtk(svc, now)
        msk_n = mtk_n = 0
        if mtk is not None:
            for ue in self.ues:
                if ue.keys.has_msk(mtk.msk):
                    msk_n += 1
                    if ue.srtp_key(mtk.msk, mtk.mtk_id) is not None:
                        mtk_n += 1
        msk_id = None if mtk is None else str(mtk.msk)
        self.recorder.add_sample(now, len(self.ues), msk_n, mtk_n, msk_id)

    def is_current(self, i: int, service: ServiceRecord, now: float | None = None) -> bool:
        """True when UE ``i`` holds the MTK (and so the MSK) the BM-SC uses now for
        ``service``."""
        t = self.sim.now if now is None else now
        mtk = self.core.scheduler.current_mtk(service, t)
        if mtk is None:
            return False
        return self.ues[i].srtp_key(mtk.msk, mtk.mtk_id) is not None

    def all_current(self, service: ServiceRecord | None = None) -> list[int]:
        """Indexes of UEs that are NOT current for ``service`` (first service by default)."""
        svc = service or self.services[0]
        return [i for i in range(len(self.ues)) if not self.is_current(i, svc)]


def default_service(start: float, **kw: object) -> ServiceRecord:
    """A short-period service for simulations (MSK 120 s, MTK 20 s)."""
    base: dict[str, object] = {
        "msk_lifetime": 120.0,
        "mtk_lifetime": 20.0,
        "msk_lead": 60.0,
        "mtk_lead": 5.0,
        "announce_interval": 1.0,
        "start": start,
    }
    base.update(kw)
    return ServiceRecord("urn:mbmsec:sim:tv", KD, 1, "239.10.0.1", 5001, **base)  # type: ignore[arg-type]


def build_world(
    n_ues: int,
    *,
    profile: str = "compact",
    seed: int = 1,
    start: float = 1_700_000_000.0,
    services: list[ServiceRecord] | None = None,
    link: LinkProfile | None = None,
    retry: RetryPolicy | None = None,
    key_lifetime: float = 86_400.0,
    capture: bool = False,
    bmsc_config: dict[str, object] | None = None,
    ue_services: list[str] | None = None,
    recorder: SimRecorder | None = None,
) -> World:
    """Build HSS + BSF, a BM-SC with ``services`` and ``n_ues`` UEs of ``profile`` (``compact``,
    ``3gpp`` or ``mixed``: even UEs compact, odd 3gpp). ``link`` applies to every UE's uplink
    and downlink. With ``capture`` every delivered datagram is written to :attr:`World.pcap`.
    ``ue_services`` lists the service IDs the UEs ask for (default: every service; an unknown
    ID draws the BM-SC's "unknown service" cause). With ``recorder`` the BM-SC's traffic, the
    UE events and the UEs holding the current keys are recorded as time series
    (:mod:`.metrics`).
    """
    sim = Simulator(seed=seed, start=start)
    subs = MemorySubscriberStore()
    impis = [f"ue{i}@sim.mbmsec.test" for i in range(n_ues)]
    for i, impi in enumerate(impis):
        subs.add(make_subscriber(impi, ue_key(i).hex(), opc=OPC.hex()))
    bsf = Bsf(
        BsfConfig(
            domain=BSF_DOMAIN,
            key_lifetime=key_lifetime,
            naf_credentials=(NafCredential(ZN_USER, ZN_SECRET, (BMSC_FQDN,)),),
        ),
        Hss(subs, sim.rng("hss")),
        MemoryBootstrapSessionStore(),
    )
    zn = SwitchableZn(LocalZnLookup(bsf, naf_id(BMSC_FQDN, UA_MBMS), (ZN_USER, ZN_SECRET)))
    core = BmscCore(
        BmscConfig(fqdn=BMSC_FQDN, **(bmsc_config or {})),  # type: ignore[arg-type]
        MemoryBmscStore(),
        zn,
        sim.rng("bmsc"),
    )
    svcs = services if services is not None else [default_service(start)]
    for s in svcs:
        core.add_service(s, start)
    sim.add_http_server("bsf", bsf.handle)
    if recorder is None:
        sim.add_node(BMSC_ADDR, core)
        sim.add_http_server("bmsc", core.handle_http, node=BMSC_ADDR)
    else:
        sim.add_node(BMSC_ADDR, recorder.node(core))
        sim.add_http_server("bmsc", recorder.http(core.handle_http), node=BMSC_ADDR)
    world = World(sim, bsf, zn, core, svcs, recorder=recorder)
    if capture:
        pcap = PcapWriter()
        world.pcap = pcap
        sim.add_tap(lambda src, dst, data, ts: pcap.add_udp(src, dst, data, ts))
    for i, impi in enumerate(impis):
        prof = profile if profile != "mixed" else ("compact" if i % 2 == 0 else "3gpp")
        cfg = UeConfig(
            bmsc_fqdn=BMSC_FQDN,
            services=tuple(
                ServiceConfig(sid) for sid in (ue_services or [s.service_id for s in svcs])
            ),
            profile=prof,  # type: ignore[arg-type]
            bmsc_addr=BMSC_ADDR,
            mikey_port=MIKEY_PORT,
            retry=retry or RetryPolicy(),
            bootstrap_retry=retry or RetryPolicy(),
        )
        rng = sim.rng(f"ue{i}")
        boot = BootstrapClient(impi, GbaUicc(ue_key(i), OPC), realm=BSF_DOMAIN, rng=rng)
        ue = UeKeyClient(cfg, boot, rng, now=start)
        world.ues.append(ue)
        addr = ue_addr(i)
        sim.add_node(addr, ue, uplink=link, downlink=link)
        for s in svcs:
            sim.join((s.group_host, s.group_port), addr)
    if recorder is not None:
        recorder.add_profiles(ue.config.profile for ue in world.ues)
    return world
