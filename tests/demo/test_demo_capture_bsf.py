"""The demo's HTTP tap on the real BSF server: a Ub bootstrap over loopback is captured and
tshark reassembles the HTTP exchange from the pcap."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from mbmsec.demo.capture import Capture, http_tap_middleware
from mbmsec.gba.bsf import Bsf, BsfConfig
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.hss import Hss, make_subscriber
from mbmsec.net.gba_client import bootstrap
from mbmsec.net.http_bsf import BsfServer
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from tshark_harness import assert_clean, dissect

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"


async def _run(tmp_path: Path) -> tuple[Capture, str]:
    subs = MemorySubscriberStore()
    subs.add(make_subscriber("ue1@mbmsec.test", K, opc=OPC))
    bsf = Bsf(BsfConfig(), Hss(subs, os.urandom), MemoryBootstrapSessionStore())
    server = BsfServer(bsf)
    cap = Capture()
    server.app.middlewares.append(
        http_tap_middleware(lambda c, s, rq, rs, t0, t1: cap.http(c, s, rq, rs, t0, t1))
    )
    urls = await server.start((("127.0.0.1", 0),))
    try:
        uicc = GbaUicc(bytes.fromhex(K), bytes.fromhex(OPC))
        client = BootstrapClient("ue1@mbmsec.test", uicc, realm="bsf.mbmsec.test", rng=os.urandom)
        async with aiohttp.ClientSession() as session:
            result = await bootstrap(client, urls[0], session=session)
    finally:
        await server.close()
    return cap, result.btid


def test_bootstrap_exchange_is_captured_and_dissected(tmp_path: Path) -> None:
    cap, btid = asyncio.run(_run(tmp_path))
    assert cap.stats.http_exchanges == 2  # GET -> 401 challenge, GET with RES -> 200
    path = tmp_path / "ub.pcap"
    path.write_bytes(cap.pcap_bytes())
    port = cap.exchanges()[0][1][1]
    pkts = dissect(path, ("tcp.check_checksum:TRUE",), (f"tcp.port=={port},http",))
    for p in pkts:
        assert_clean(p)
    codes = [f.show for p in pkts for f in p.find("http.response.code")]
    assert codes == ["401", "200"]
    bodies = b"".join(x[3] for x in cap.exchanges())
    assert btid.encode() in bodies
