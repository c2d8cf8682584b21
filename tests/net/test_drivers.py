"""The asyncio drivers on real loopback sockets, in one process: BSF server, BM-SC server, UE
runners of both profiles; with loopback multicast and with the unicast fan-out fallback.

Also checks SRTP keyed from the MTK the UE received (MKI = MSK ID || MTK ID), the Zn path of
the BM-SC (prefetch for HTTP, parked datagrams for UDP), /metrics and clean shutdown.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest

from mbmsec.bmsc.core import BmscConfig, BmscCore
from mbmsec.bmsc.zn import ZnAnswerCache
from mbmsec.gba.bsf import Bsf, BsfConfig, NafCredential
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.hss import Hss, make_subscriber
from mbmsec.mbms.keys import key_domain_id
from mbmsec.net.bmsc_server import BmscServer
from mbmsec.net.gba_client import ZnClient
from mbmsec.net.http_bsf import BsfServer
from mbmsec.net.multicast import probe_loopback_multicast
from mbmsec.net.ue_runner import UeRunner, bind_udp
from mbmsec.srtp import Mki, SrtpKey, SrtpSender, build_rtp
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.bmsc_protocols import ServiceRecord
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore
from mbmsec.ue import events as ev
from mbmsec.ue.client import ServiceConfig, UeConfig, UeKeyClient
from mbmsec.ue.retry import RetryPolicy

OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
TOKEN = "driver-test-token"
FQDN = "bmsc.drivers.mbmsec.test"
DOMAIN = "bsf.drivers.mbmsec.test"
SID = "urn:mbmsec:drivers:tv"
FAST = RetryPolicy(spread=0.2, first_timeout=0.5, max_interval=2.0, lead_time=1.5)


def k_of(i: int) -> bytes:
    return (0x0102030405060708090A0B0C0D0E0F00 + i).to_bytes(16, "big")


async def run_deployment(multicast: bool, group_port: int) -> None:
    subs = MemorySubscriberStore()
    for i in range(2):
        subs.add(make_subscriber(f"ue{i}@drivers", k_of(i).hex(), opc=OPC.hex()))
    bsf = Bsf(
        BsfConfig(domain=DOMAIN, naf_credentials=(NafCredential("bmsc", TOKEN, (FQDN,)),)),
        Hss(subs, os.urandom),
        MemoryBootstrapSessionStore(),
    )
    bsf_server = BsfServer(bsf)
    [bsf_url] = await bsf_server.start((("127.0.0.1", 0),))
    cache = ZnAnswerCache()
    core = BmscCore(BmscConfig(fqdn=FQDN, push_timeout=1.0), MemoryBmscStore(), cache, os.urandom)
    svc = ServiceRecord(
        SID,
        key_domain_id("001", "01"),
        3,
        "239.78.0.1",
        group_port,
        msk_lifetime=6.0,
        mtk_lifetime=2.0,
        msk_lead=3.0,
        mtk_lead=0.5,
        announce_interval=0.4,
    )
    core.add_service(svc, time.time())
    server = BmscServer(core, cache, ZnClient(bsf_url, basic=("bmsc", TOKEN)), multicast=multicast)
    await server.start(("127.0.0.1", 0), (("127.0.0.1", 0),))
    assert server.udp_address is not None
    events: dict[int, list[ev.UeEvent]] = {0: [], 1: []}
    runners = []
    try:
        for i, profile in enumerate(("compact", "3gpp")):
            sock = bind_udp("127.0.0.1", 0)
            cfg = UeConfig(
                bmsc_fqdn=FQDN,
                services=(ServiceConfig(SID, mtk_period=2.0),),
                profile=profile,  # type: ignore[arg-type]
                bmsc_addr=server.udp_address,
                mikey_port=sock.getsockname()[1],
                retry=FAST,
                bootstrap_retry=FAST,
            )
            boot = BootstrapClient(
                f"ue{i}@drivers", GbaUicc(k_of(i), OPC), realm=DOMAIN, rng=os.urandom
            )
            client = UeKeyClient(cfg, boot, os.urandom, now=time.time())
            runner = UeRunner(
                client, bsf_url=bsf_url, bmsc_url=server.urls[0], on_event=events[i].append
            )
            await runner.start(sock, [(svc.group_host, svc.group_port)] if multicast else [])
            runners.append(runner)

        def rotated(i: int) -> bool:
            return len({e.msk_id for e in events[i] if isinstance(e, ev.MtkInstalled)}) >= 2

        end = time.monotonic() + 30
        while time.monotonic() < end and not all(rotated(i) for i in events):
            await asyncio.sleep(0.1)
        for i in events:
            names = [e.name for e in events[i]]
            assert rotated(i), f"UE {i}: {names}"
        assert any(isinstance(e, ev.Registered) for e in events[1])
        if not multicast:
            assert (
                runners[0].joined == []
                and len(server.members.members((svc.group_host, svc.group_port))) == 2
            )

        # SRTP protected with the BM-SC's current MTK decrypts at both UEs
        mtk = core.scheduler.current_mtk(svc, time.time())
        assert mtk is not None
        sender = SrtpSender(0x5EED)
        sender.set_key(SrtpKey(Mki(mtk.msk.msk_id.value, mtk.mtk_id), mtk.key, mtk.salt))
        rtp = build_rtp(0x5EED, 1, 0, b"mbms media")
        packet = sender.protect(rtp)
        for r in runners:
            assert r.feed_srtp(packet) == rtp

        async with aiohttp.ClientSession() as s, s.get(server.urls[0] + "/metrics") as resp:
            text = await resp.text()
        assert resp.status == 200 and "mbmsec_bmsc_mtk_sent_total" in text
        assert "mbmsec_bmsc_compact_keys_total" in text
    finally:
        for r in runners:
            await r.close()
        await server.close()
        await bsf_server.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("multicast", [True, False])
def test_bsf_bmsc_ue_drivers(multicast: bool, unused_udp_port: int) -> None:
    if multicast and not probe_loopback_multicast():
        pytest.skip("kernel refuses loopback multicast here; fan-out is tested too")
    asyncio.run(run_deployment(multicast, unused_udp_port))


@pytest.fixture
def unused_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
