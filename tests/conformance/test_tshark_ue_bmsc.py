"""Every MIKEY message the BM-SC and the UE key client send, captured and read by tshark.

A simulated deployment (real HSS/BSF, BmscCore, UeKeyClient; sim/world.py) runs both profiles
with a Zn outage at the start (unauthenticated Error messages, cause 242) and a request for an
unknown service (authenticated Error message with V, cause 243). Every delivered datagram goes
to a pcap; tshark must dissect each as MIKEY (the MTK group port by decode-as) with no malformed
layer and no expert warning, and the capture must hold each message type: compact key request
(data type 241), key response and MSK push (PSK init with IDs), MTK message (PSK init without
IDs), verification message (type 1), Error message with and without V (type 6).
"""

from __future__ import annotations

from pathlib import Path

from tshark_harness import assert_clean, dissect

from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import DataType, TsType
from mbmsec.mikey.payloads import IdPayload, Timestamp, Verification
from mbmsec.sim.world import build_world

T0 = 1_700_000_000.0


def kind(data: bytes) -> str:
    msg = decode_message(data)
    h = msg.header
    if h.data_type == DataType.PSK_KEY_REQUEST:
        return "key-request"
    if h.data_type == DataType.PSK_VERIFY:
        return "verification"
    if h.data_type == DataType.ERROR:
        has_v = bool(msg.payloads) and isinstance(msg.payloads[-1], Verification)
        return "error+v" if has_v else "error"
    t = msg.find(Timestamp)
    if msg.find(IdPayload) is None:
        return "mtk"
    return "key-response" if t is not None and t.ts_type == TsType.NTP_UTC else "msk-push"


def test_every_message_type_dissects_cleanly(tmp_path: Path) -> None:
    world = build_world(
        4,
        profile="mixed",
        seed=77,
        capture=True,
        ue_services=["urn:mbmsec:sim:tv", "urn:mbmsec:sim:nope"],
    )
    sent: list[bytes] = []
    world.sim.add_tap(lambda src, dst, data, ts: sent.append(data))  # same order as the pcap
    world.zn.up = False
    world.run_until(T0 + 6)
    world.zn.up = True
    world.run_until(T0 + 60)
    assert world.pcap is not None
    path = tmp_path / "ue-bmsc.pcap"
    path.write_bytes(world.pcap.getvalue())
    svc = world.services[0]
    packets = dissect(path, ("udp.check_checksum:TRUE",), (f"udp.port=={svc.group_port},mikey",))
    assert len(packets) == len(world.pcap) == len(sent)
    kinds: dict[str, int] = {}
    for pkt, data in zip(packets, sent, strict=True):
        assert pkt.has_proto("mikey"), f"frame {pkt.number} not dissected as MIKEY"
        assert_clean(pkt)
        assert pkt.proto("mikey").size == len(data)
        kinds[kind(data)] = kinds.get(kind(data), 0) + 1
    want = {"key-request", "key-response", "msk-push", "mtk", "verification", "error", "error+v"}
    assert want <= set(kinds), kinds
