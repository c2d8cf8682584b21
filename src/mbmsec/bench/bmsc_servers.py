"""Server side of the ``bmsc`` bench case, in its own process: BSF, BM-SC and the TLS baseline.

The bench client (UEs) and the servers run in two processes so that the client's work does not
count against the servers' CPU, and the servers' CPU time per delivery can be read directly
(``time.process_time`` in this process). One asyncio event loop runs, all on 127.0.0.1:

- a real BSF (:class:`~mbmsec.net.http_bsf.BsfServer`, in-memory HSS and session stores) with
  the bench's subscribers (K derived from the UE index, see :func:`subscriber_k`);
- the real BM-SC driver (:class:`~mbmsec.net.bmsc_server.BmscServer` over a
  :class:`~mbmsec.bmsc.core.BmscCore` with the in-memory store), its Zn lookups going over HTTP
  to that BSF through :class:`~mbmsec.net.gba_client.ZnClient` and cached in a
  :class:`~mbmsec.bmsc.zn.ZnAnswerCache` (warm once the UEs made a first request);
- the baseline: :class:`~.tls_proxy.KeyServer` (sharing the BM-SC core, so its user keys and
  MSKs are the same) behind :class:`~.tls_proxy.TlsProxy` with a certificate generated here.

The parent talks to this process over a :mod:`multiprocessing` pipe: :class:`ServerProcess`.
Commands: ``cpu`` (process CPU seconds), ``stats`` (BM-SC counters, plus MSKs served by the
key server and connections accepted by the proxy), ``fingerprints`` (SHA-256
of every MSK the BM-SC holds, by MSK ref: lets the client check that each delivery decrypted
the right key without sending keys across), ``stop``. End of the pipe stops the process too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from ..bmsc.core import BmscConfig, BmscCore
from ..bmsc.zn import ZnAnswerCache
from ..errors import MbmsecError
from ..gba.bsf import Bsf, BsfConfig, NafCredential
from ..gba.hss import Hss, make_subscriber
from ..mbms.keys import key_domain_id
from ..net.bmsc_server import BmscServer
from ..net.gba_client import ZnClient
from ..net.http_bsf import BsfServer
from ..store.bmsc_memory import MemoryBmscStore
from ..store.bmsc_protocols import ServiceRecord
from ..store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore
from .tls_proxy import KeyServer, TlsProxy, make_self_signed, server_context

__all__ = [
    "BSF_DOMAIN",
    "FQDN",
    "OPC",
    "SERVICE_ID",
    "ServerAddresses",
    "ServerProcess",
    "impi_of",
    "subscriber_k",
]

FQDN: Final = "bmsc.bench.mbmsec.test"
BSF_DOMAIN: Final = "bsf.bench.mbmsec.test"
SERVICE_ID: Final = "urn:mbmsec:bench:tv"
OPC: Final = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
ZN_USER: Final = "bmsc"
ZN_SECRET: Final = "bench-zn-secret-0123456789"  # noqa: S105 - loopback bench credential
LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT: Final = 60.0
CALL_TIMEOUT: Final = 30.0


def subscriber_k(i: int) -> bytes:
    """The USIM key K of bench UE ``i`` (derived, so both processes know it)."""
    return hashlib.sha256(b"mbmsec bench ue %d" % i).digest()[:16]


def impi_of(i: int) -> str:
    """The IMPI of bench UE ``i``."""
    return f"ue{i}@bench.mbmsec.test"


@dataclass(frozen=True)
class ServerAddresses:
    """Where the servers listen, and the proxy's certificate (PEM) for the UEs to trust."""

    bsf_url: str
    bmsc_udp: tuple[str, int]
    bmsc_url: str
    proxy: tuple[str, int]
    key_server: tuple[str, int]
    cert_pem: bytes


def _service(now: float) -> ServiceRecord:
    # One MSK for the whole run (the schedule starts now, MSK lifetime one day, short lead),
    # MTKs change hourly: no key rotation or announcement burst inside a bench run.
    return ServiceRecord(
        SERVICE_ID,
        key_domain_id("001", "01"),
        1,
        "239.77.0.1",
        5004,
        msk_lifetime=86_400.0,
        mtk_lifetime=3_600.0,
        msk_lead=60.0,
        mtk_lead=5.0,
        announce_interval=3_600.0,
        verification=True,
        start=now - 1.0,
    )


async def _serve(conn: Connection, ues: int) -> None:
    loop = asyncio.get_running_loop()
    subs = MemorySubscriberStore()
    for i in range(ues):
        subs.add(make_subscriber(impi_of(i), subscriber_k(i).hex(), opc=OPC.hex()))
    bsf = Bsf(
        BsfConfig(domain=BSF_DOMAIN, naf_credentials=(NafCredential(ZN_USER, ZN_SECRET, (FQDN,)),)),
        Hss(subs, os.urandom),
        MemoryBootstrapSessionStore(),
    )
    bsf_server = BsfServer(bsf, purge_interval=3600.0)
    [bsf_url] = await bsf_server.start(((LOOPBACK, 0),))
    cache = ZnAnswerCache()
    core = BmscCore(BmscConfig(fqdn=FQDN), MemoryBmscStore(), cache, os.urandom)
    core.add_service(_service(time.time()), time.time())
    # Unicast fan-out instead of multicast: no dependence on the kernel's loopback multicast;
    # no MTK announcement falls inside a run (see _service), and the UEs drop strays anyway.
    bmsc = BmscServer(core, cache, ZnClient(bsf_url, basic=(ZN_USER, ZN_SECRET)), multicast=False)
    await bmsc.start((LOOPBACK, 0), ((LOOPBACK, 0),))
    assert bmsc.udp_address is not None
    key_server = KeyServer(core)
    ks_addr = await key_server.start((LOOPBACK, 0))
    cert_pem, key_pem = make_self_signed()
    with tempfile.TemporaryDirectory(prefix="mbmsec-bench-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.touch(0o600)
        key_file.write_bytes(key_pem)
        proxy = TlsProxy(server_context(cert_file, key_file), ks_addr)
    proxy_addr = await proxy.start((LOOPBACK, 0))
    conn.send(
        ServerAddresses(bsf_url, bmsc.udp_address, bmsc.urls[0], proxy_addr, ks_addr, cert_pem)
    )

    done = asyncio.Event()

    def on_command() -> None:
        try:
            while conn.poll():
                cmd = conn.recv()
                if cmd == "stop":
                    done.set()
                    return
                conn.send(_answer(cmd, core, key_server, proxy))
        except (EOFError, OSError):
            done.set()

    loop.add_reader(conn.fileno(), on_command)
    try:
        await done.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await proxy.close()
        await key_server.close()
        await bmsc.close()
        await bsf_server.close()


def _answer(cmd: str, core: BmscCore, key_server: KeyServer, proxy: TlsProxy) -> Any:
    if cmd == "cpu":
        return time.process_time()
    if cmd == "stats":
        return {
            **core.stats,
            "keyserver.served": key_server.handler.served,
            "proxy.connections": proxy.connections,
        }
    if cmd == "fingerprints":
        out: dict[str, str] = {}
        for svc in core.scheduler.services():
            for m in core.store.msks_for_service(svc.service_id):
                out[str(m.ref)] = hashlib.sha256(m.key).hexdigest()
        return out
    return None


def serve(conn: Connection, ues: int) -> None:
    """Process entry point: run the servers until ``stop`` or the end of the pipe."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, ues))
    conn.close()


class ServerProcess:
    """Parent side: start the server process, ask it questions, stop it."""

    def __init__(self, ues: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=serve, args=(child, ues), name="mbmsec-bench-servers", daemon=True
        )
        self._proc.start()
        child.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._conn.poll(0.1):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                self.close()
                raise MbmsecError(f"bench server process did not start ({self._proc.exitcode})")
        self.addresses: ServerAddresses = self._conn.recv()

    def __repr__(self) -> str:
        return f"ServerProcess(pid={self._proc.pid})"

    def call(self, cmd: str) -> Any:
        """Send ``cmd`` and return the answer (see the module docstring)."""
        self._conn.send(cmd)
        if not self._conn.poll(CALL_TIMEOUT):
            raise MbmsecError(f"bench server process did not answer {cmd!r}")
        return self._conn.recv()

    def cpu(self) -> float:
        """CPU seconds (user + system) the server process used so far."""
        return float(self.call("cpu"))

    def stats(self) -> dict[str, int]:
        """The BM-SC core's counters."""
        return dict(self.call("stats"))

    def fingerprints(self) -> dict[str, str]:
        """SHA-256 (hex) of each MSK the BM-SC holds, keyed by ``str(MskRef)``."""
        return dict(self.call("fingerprints"))

    def close(self) -> None:
        """Stop the process (politely, then by its pid if it hangs)."""
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send("stop")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()
