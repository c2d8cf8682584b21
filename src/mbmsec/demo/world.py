"""The demo's world: HSS+BSF, BM-SC and N UEs, built from the real components on loopback.

Everything is the production code path: SQLite stores in a work directory
(:mod:`mbmsec.store.sqlite_gba`, :mod:`mbmsec.store.bmsc_sqlite`), the aiohttp BSF
(:class:`mbmsec.net.http_bsf.BsfServer`), the BM-SC driver (:class:`mbmsec.net.bmsc_server.
BmscServer` over :class:`mbmsec.bmsc.core.BmscCore`, Zn over HTTP with
:class:`mbmsec.net.gba_client.ZnClient`) and one :class:`mbmsec.net.ue_runner.UeRunner` per UE
over :class:`mbmsec.ue.client.UeKeyClient`. They share one asyncio loop but talk only through
sockets. This module only builds and stops them; :mod:`.orchestrate` plays the scenario.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..bmsc.core import BmscConfig, BmscCore
from ..bmsc.zn import ZnAnswerCache
from ..gba.bsf import Bsf, BsfConfig, NafCredential
from ..gba.client import BootstrapClient, GbaUicc
from ..gba.hss import Hss, make_subscriber
from ..mbms.keys import key_domain_id
from ..net.bmsc_server import BmscServer
from ..net.gba_client import ZnClient
from ..net.http_bsf import BsfServer
from ..net.ue_runner import UeRunner, bind_udp
from ..srtp import SrtpReceiver
from ..store.bmsc_protocols import ServiceRecord
from ..store.bmsc_sqlite import SqliteBmscStore
from ..store.sqlite_gba import SqliteBootstrapSessionStore, SqliteSubscriberStore
from ..store.ue_keys import MemoryUeKeyStore
from ..ue.client import ServiceConfig, UeConfig, UeKeyClient
from .media import MediaSink
from .report import UeCounters
from .scenario import Timing

__all__ = [
    "BMSC_FQDN",
    "BSF_DOMAIN",
    "KEY_DOMAIN_ID",
    "KEY_GROUP",
    "SERVICE_ID",
    "UeHandle",
    "World",
    "preferred_port",
]

Addr = tuple[str, int]
Rng = Callable[[int], bytes]

LOOPBACK: Final = "127.0.0.1"
BSF_DOMAIN: Final = "bsf.demo.mbmsec.test"
BMSC_FQDN: Final = "bmsc.demo.mbmsec.test"
SERVICE_ID: Final = "urn:mbmsec:demo:tv"
KEY_DOMAIN_ID: Final = key_domain_id("001", "01")
KEY_GROUP: Final = 1
MTK_GROUP: Final = "239.255.90.1"
MEDIA_GROUP: Final = "239.255.90.2"
# Ports tshark dissects without options (IANA mikey; Wireshark's default HTTP ports); the demo
# uses them when they are free on loopback and any free port otherwise.
PREFERRED_MIKEY: Final = 2269
PREFERRED_BSF: Final = 8080
PREFERRED_BMSC_HTTP: Final = 8088
ZN_USER: Final = "bmsc"


def preferred_port(port: int, kind: int = socket.SOCK_STREAM) -> int:
    """``port`` if it can be bound on loopback right now, else 0 (any free port)."""
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:  # as the servers bind: TIME_WAIT is no conflict
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return 0
    return port


def free_udp_port() -> int:
    """A UDP port that was free on loopback a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class UeHandle:
    """One UE of the demo: its runner, media socket, counters and what it reported."""

    name: str
    impi: str
    profile: str
    runner: UeRunner
    client: UeKeyClient
    sink: MediaSink
    counters: UeCounters
    mikey_address: Addr
    btid: str | None = None
    request_at: float | None = None
    # False while the UE is (about to be) unreachable: packets sent then are not expected
    expecting: bool = True
    bootstrap_failures: list[str] = field(default_factory=list)
    refused: list[tuple[float, str]] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)


@dataclass
class World:
    """The running components (filled in by :meth:`start_*`, stopped by :meth:`close`)."""

    workdir: Path
    rng: Rng
    multicast: bool
    zn_token: str = field(repr=False, default="")
    bsf: Bsf | None = None
    bsf_server: BsfServer | None = None
    bsf_listen: Addr = (LOOPBACK, 0)
    bsf_url: str = ""
    bsf_middlewares: list[Any] = field(default_factory=list)
    bmsc: BmscServer | None = None
    bmsc_store: SqliteBmscStore | None = None
    service: ServiceRecord | None = None
    ues: list[UeHandle] = field(default_factory=list)
    secrets: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    _gba_stores: list[Any] = field(default_factory=list, repr=False)

    # --- HSS + BSF -----------------------------------------------------------------------------

    def provision(self, impis: list[str]) -> None:
        """Create one HSS subscriber per IMPI with a fresh K and OPc (SQLite, in the workdir)."""
        subs = SqliteSubscriberStore(self.workdir / "gba.db")
        self._gba_stores.append(subs)
        records = []
        for impi in impis:
            k, opc = self.rng(16), self.rng(16)
            self.secrets[impi] = (k, opc)
            records.append(
                make_subscriber(
                    impi,
                    k.hex(),
                    opc=opc.hex(),
                    naf_fqdns=(BMSC_FQDN,),
                    mbms_service_ids=(SERVICE_ID,),
                )
            )
        subs.add_many(records)
        sessions = SqliteBootstrapSessionStore(self.workdir / "gba.db")
        self._gba_stores.append(sessions)
        self.zn_token = self.rng(16).hex()
        cred = NafCredential(ZN_USER, self.zn_token, (BMSC_FQDN,))
        cfg = BsfConfig(domain=BSF_DOMAIN, key_lifetime=3600.0, naf_credentials=(cred,))
        self.bsf = Bsf(cfg, Hss(subs, self.rng), sessions)

    async def start_bsf(self) -> None:
        """Start (or restart, after :meth:`stop_bsf`) the BSF HTTP server on its address."""
        assert self.bsf is not None
        server = BsfServer(self.bsf, purge_interval=60.0)
        server.app.middlewares.extend(self.bsf_middlewares)
        host, port = self.bsf_listen
        if port == 0:
            port = preferred_port(PREFERRED_BSF)
        urls = await server.start(((host, port),))
        self.bsf_server = server
        self.bsf_url = urls[0]
        p = int(urls[0].rsplit(":", 1)[1])
        self.bsf_listen = (host, p)

    async def stop_bsf(self) -> None:
        """Stop the BSF HTTP server (the outage); its stores stay open."""
        if self.bsf_server is not None:
            await self.bsf_server.close()
            self.bsf_server = None

    # --- BM-SC ---------------------------------------------------------------------------------

    async def start_bmsc(
        self, service: ServiceRecord, zn_token: str, middlewares: list[Any]
    ) -> BmscServer:
        """Start the BM-SC (SQLite store) with ``service``; Zn uses ``zn_token``."""
        store = SqliteBmscStore(self.workdir / "bmsc.db")
        self.bmsc_store = store
        cache = ZnAnswerCache(negative_ttl=0.3)
        cfg = BmscConfig(fqdn=BMSC_FQDN, push_timeout=1.0, push_retries=4)
        core = BmscCore(cfg, store, cache, self.rng)
        core.add_service(service, time.time())
        self.service = service
        zn = ZnClient(self.bsf_url, basic=(ZN_USER, zn_token), timeout=2.0)
        server = BmscServer(core, cache, zn, multicast=self.multicast)
        server.app.middlewares.extend(middlewares)
        udp = (LOOPBACK, preferred_port(PREFERRED_MIKEY, socket.SOCK_DGRAM))
        http = (LOOPBACK, preferred_port(PREFERRED_BMSC_HTTP))
        await server.start(udp, (http,))
        self.bmsc = server
        return server

    def forget_zn_answers(self) -> None:
        """Drop everything the BM-SC learnt over Zn (as after a BM-SC restart)."""
        assert self.bmsc is not None
        for h in self.ues:
            if h.btid is not None:
                self.bmsc.core.forget_user(h.btid)
                self.bmsc.zn_cache.forget(h.btid)
                self.bmsc.zn_client.forget(h.btid)

    # --- UEs -----------------------------------------------------------------------------------

    async def start_ue(
        self,
        index: int,
        impi: str,
        profile: str,
        timing: Timing,
        counters: UeCounters,
        *,
        k_override: bytes | None = None,
        on_event: Callable[[UeHandle, Any], None],
        tap: Callable[[bytes, Addr, Addr], None] | None,
    ) -> UeHandle:
        """Start UE ``index``: USIM with the provisioned K (or ``k_override``), key client,
        runner on a loopback UDP port, SRTP receiver and media socket."""
        assert self.bmsc is not None and self.service is not None
        k, opc = self.secrets[impi]
        uicc = GbaUicc(k_override if k_override is not None else k, opc)
        boot = BootstrapClient(impi, uicc, realm=BSF_DOMAIN, rng=self.rng)
        sock = bind_udp(LOOPBACK, 0)
        port = int(sock.getsockname()[1])
        assert self.bmsc.udp_address is not None
        svc = ServiceConfig(SERVICE_ID, KEY_DOMAIN_ID, KEY_GROUP, timing.mtk_period)
        cfg = UeConfig(
            bmsc_fqdn=BMSC_FQDN,
            services=(svc,),
            profile="3gpp" if profile == "3gpp" else "compact",
            bmsc_addr=self.bmsc.udp_address,
            mikey_port=port,
            retry=timing.ue_retry,
            bootstrap_retry=timing.ue_bootstrap_retry,
            rebootstrap_margin=60.0,
        )
        client = UeKeyClient(cfg, boot, self.rng, MemoryUeKeyStore(), now=time.time())
        runner = UeRunner(
            client,
            bsf_url=self.bsf_url,
            bmsc_url=self.bmsc.urls[0] if self.bmsc.urls else None,
            http_timeout=3.0,
        )
        # Room for every MTK the UE may hold (two MSKs' worth): the runner adds the key store's
        # MTKs to the receiver, and a smaller receiver would evict current keys.
        per_msk = max(1, math.ceil(timing.msk_lifetime / timing.mtk_period))
        receiver = SrtpReceiver(max_keys=2 * per_msk + 8)
        runner.srtp = receiver
        runner.tap = tap
        name = f"ue{index:03d}"

        def reachable() -> bool:
            return runner.reachable

        sink = MediaSink(counters, runner.feed_srtp, receiver.has_key, receiver.peek_mki, reachable)
        handle = UeHandle(name, impi, profile, runner, client, sink, counters, (LOOPBACK, port))
        runner.on_event = lambda e: on_event(handle, e)
        groups = [(self.service.group_host, self.service.group_port)] if self.multicast else []
        await runner.start(sock, groups)
        self.ues.append(handle)
        return handle

    # --- shutdown ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every component and close the stores; never raises."""
        for h in self.ues:
            h.sink.close()
        for h in self.ues:
            with contextlib.suppress(Exception):
                await h.runner.close()
        if self.bmsc is not None:
            with contextlib.suppress(Exception):
                await self.bmsc.close()
        with contextlib.suppress(Exception):
            await self.stop_bsf()
        if self.bmsc_store is not None:
            with contextlib.suppress(Exception):
                self.bmsc_store.close()
        for s in self._gba_stores:
            with contextlib.suppress(Exception):
                s.close()


def demo_rng(n: int) -> bytes:
    """The demo's random source (the operating system's CSPRNG)."""
    return os.urandom(n)
