"""The UE driver's SRTP receiver always holds the newest MTKs, however many the store keeps.

Regression: the receiver had room for 16 keys and was refilled from the whole key store (every
MTK of an MSK, 144 a day with 10-minute MTKs) on each new MTK, so it evicted the current key.
"""

from __future__ import annotations

from mbmsec.net.ue_runner import UeRunner
from mbmsec.sim.world import build_world
from mbmsec.srtp import SrtpKey, SrtpSender, build_rtp
from mbmsec.store.ue_keys import UeMtkRecord
from mbmsec.ue import events as ev

T0 = 1_700_000_000.0


def test_receiver_keeps_newest_keys_with_many_mtks_stored() -> None:
    world = build_world(1, profile="compact", seed=7)
    world.run_until(T0 + 30)
    client = world.ues[0]
    held = client.current_keys(world.services[0].service_id)
    assert held is not None
    ref, _ = held
    store = client.keys.store
    for mtk_id in range(1000, 1040):  # far more MTKs than the receiver has room for
        store.put_mtk(UeMtkRecord(ref, mtk_id, bytes([mtk_id % 251]) * 16, b"\x01" * 14))
    runner = UeRunner(client, bsf_url="http://127.0.0.1:9")

    def packet(mtk_id: int, seq: int) -> bytes:
        key = client.srtp_key(ref, mtk_id)
        assert isinstance(key, SrtpKey)
        sender = SrtpSender(0x1234)
        sender.set_key(key)
        return sender.protect(build_rtp(0x1234, seq, seq * 160, b"payload"))

    assert runner.feed_srtp(packet(1039, 1)) is not None  # first packet builds the receiver
    assert runner.srtp is not None
    for mtk_id in range(1040, 1060):  # MTK rotations, each announced by its event
        store.put_mtk(UeMtkRecord(ref, mtk_id, bytes([mtk_id % 251]) * 16, b"\x02" * 14))
        runner._install_srtp(ev.MtkInstalled(T0 + 30, str(ref), mtk_id))
        assert runner.feed_srtp(packet(mtk_id, mtk_id)) is not None, mtk_id
        # packets still in flight under the previous MTKs decrypt too
        for back in (1, 2, 8):
            assert runner.feed_srtp(packet(mtk_id - back, mtk_id)) is not None, (mtk_id, back)
    assert len(runner.srtp.mkis) == runner.srtp.max_keys
