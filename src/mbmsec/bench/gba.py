"""Bench case ``gba``: full Ub bootstraps and Zn lookups over loopback HTTP.

Both run against a real :class:`~mbmsec.net.http_bsf.BsfServer` (aiohttp, SQLite store in a
temporary directory with WAL and ``synchronous=FULL``, so every bootstrap pays the durable SQN
advance and session write) with aiohttp clients on one keep-alive connection, server and client
in one event loop on a background thread.

- **bootstrap**: the UE state machine (:class:`~mbmsec.gba.client.BootstrapClient`, software
  USIM with Milenage) against the BSF: GET -> 401 challenge (HSS AV, SQN advance) -> GET with
  the AKAv1-MD5 digest -> 200 BootstrappingInfo (session stored), rspauth checked.
- **zn lookup**: :class:`~mbmsec.net.gba_client.ZnClient` with its cache off: POST
  /zn/bootstrapping-info (Bearer token) -> session lookup, GUSS check, Ks_NAF derivation, JSON.

**Floor**: the same number of bare aiohttp request/response exchanges on the same kind of
connection, measured in the same run: two GETs (answered 401 with a fixed header, then 200
with a fixed body) for a bootstrap; one POST with a JSON body answered by a fixed JSON body for
a Zn lookup. The ratio therefore shows what GBA adds on top of the HTTP transport.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from ..gba.bsf import BsfConfig, NafCredential
from ..gba.client import BootstrapClient, GbaUicc
from ..gba.hss import make_subscriber
from ..gba.kdf import UA_MBMS, naf_id
from ..net.gba_client import ZnClient, bootstrap
from ..net.http_bsf import BsfServer, BsfServerConfig, open_bsf
from . import BenchConfig, Rate, Result, measure_pair, register_case

__all__ = ["GbaBench", "run"]

T = TypeVar("T")

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "bench@home1.net"
DOMAIN = "bsf.home1.net"
NAF_FQDN = "bmsc.home1.net"
TOKEN = "bench-zn-token-0123456789"  # noqa: S105 - loopback bench credential

FLOOR_BOOTSTRAP = (
    "2 bare aiohttp GET round trips on one keep-alive connection (401 + fixed header, then "
    "200 + fixed 200-byte body), same loop and thread"
)
FLOOR_ZN = (
    "1 bare aiohttp POST round trip with a JSON body answered by a fixed JSON body, same "
    "connection kind, loop and thread"
)


class GbaBench:
    """A BSF and a bare aiohttp server on loopback, driven from a background event loop."""

    def __init__(self, tmpdir: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.db = Path(tmpdir) / "bench-gba.db"
        self.naf_id = naf_id(NAF_FQDN, UA_MBMS)
        self._uicc = GbaUicc(K, OPC)  # one USIM: its SQN state follows the HSS
        self.call(self._setup())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the background loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _setup(self) -> None:
        cfg = BsfServerConfig(
            bsf=BsfConfig(domain=DOMAIN, naf_credentials=(NafCredential("bmsc", TOKEN),)),
            store=str(self.db),
        )
        self.bsf = open_bsf(cfg)
        self.bsf.hss.store.add(make_subscriber(IMPI, K.hex(), opc=OPC.hex()))
        self.server = BsfServer(self.bsf, purge_interval=3600.0)
        self.url = (await self.server.start((("127.0.0.1", 0),)))[0]
        self.session = aiohttp.ClientSession()
        self.zn = ZnClient(self.url, token=TOKEN, session=self.session, cache_size=0)
        # the bare server: fixed answers, no work
        body_200 = b"x" * 200

        async def bare_get(request: web.Request) -> web.Response:
            if "Authorization" in request.headers and request.headers["Authorization"] == "2":
                return web.Response(status=200, body=body_200)
            return web.Response(status=401, headers={"WWW-Authenticate": "Digest x"})

        async def bare_post(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=200, body=b'{"ok":true}', content_type="application/json")

        app = web.Application()
        app.router.add_get("/", bare_get)
        app.router.add_post("/zn", bare_post)
        self._bare = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._bare.setup()
        site = web.TCPSite(self._bare, "127.0.0.1", 0)
        await site.start()
        host, port = self._bare.addresses[0][:2]
        self.bare_url = f"http://{host}:{port}"
        self.btid = await self._bootstrap()

    async def _bootstrap(self) -> str:
        c = BootstrapClient(IMPI, self._uicc, realm=DOMAIN, rng=os.urandom)
        return (await bootstrap(c, self.url, session=self.session)).btid

    async def _zn(self) -> bytes:
        return (await self.zn.lookup(self.btid, self.naf_id)).me_key

    async def _bare_bootstrap(self) -> bytes:
        async with self.session.get(self.bare_url + "/", headers={"Authorization": "1"}) as r:
            await r.read()
        async with self.session.get(self.bare_url + "/", headers={"Authorization": "2"}) as r:
            return await r.read()

    async def _bare_zn(self) -> bytes:
        async with self.session.post(self.bare_url + "/zn", data=b'{"btid":"x"}') as r:
            return await r.read()

    def functions(self) -> dict[str, Callable[[], object]]:
        """Synchronous callables for the harness: ours and floor per measurement."""

        def sync(f: Callable[[], Awaitable[T]]) -> Callable[[], T]:
            async def wrap() -> T:
                return await f()

            return lambda: self.call(wrap())

        return {
            "bootstrap": sync(self._bootstrap),
            "bootstrap-floor": sync(self._bare_bootstrap),
            "zn": sync(self._zn),
            "zn-floor": sync(self._bare_zn),
        }

    async def _teardown(self) -> None:
        await self.session.close()
        await self.server.close()
        await self._bare.cleanup()
        self.bsf.hss.store.close()
        self.bsf.sessions.close()

    def close(self) -> None:
        """Stop servers, client and the background loop."""
        self.call(self._teardown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@register_case("gba", "GBA over loopback HTTP: Ub bootstraps and Zn lookups vs bare aiohttp")
def run(cfg: BenchConfig) -> list[Result]:
    """Measure bootstraps/s and Zn lookups/s next to bare aiohttp exchanges."""
    with tempfile.TemporaryDirectory(prefix="mbmsec-bench-gba-") as tmp:
        b = GbaBench(tmp)
        try:
            f = b.functions()
            boot, boot_floor = measure_pair(f["bootstrap"], f["bootstrap-floor"], cfg)
            zn, zn_floor = measure_pair(f["zn"], f["zn-floor"], cfg)
        finally:
            b.close()
    note = "BSF + client in one process and loop; SQLite WAL synchronous=FULL in a temp dir"
    return [
        _result("bootstrap (Ub)", "bootstrap", boot, boot_floor, FLOOR_BOOTSTRAP, note),
        _result("zn lookup", "lookup", zn, zn_floor, FLOOR_ZN, note),
    ]


def _result(name: str, unit: str, ours: Rate, floor: Rate, definition: str, note: str) -> Result:
    return Result(
        case="gba",
        name=name,
        unit=unit,
        ours=ours,
        floor=floor,
        floor_definition=definition,
        notes=(note,),
    )
