"""Forged MTK messages naming MSKs the UE lacks (anyone can send to the multicast group; the
UE cannot check them without the MSK) must not make the UE ask the BM-SC forever, nor grow its
state without bound.

Real HSS, BSF, BM-SC and UE key client on virtual time (sim/world.py). The attacker sends one
MTK-shaped datagram every few seconds, each naming another key number of the service's key
group, for two minutes, then stops.
"""

from __future__ import annotations

from mbmsec.errors import DecodeError
from mbmsec.mbms.compact import parse_key_request
from mbmsec.mbms.keys import MskId, MskRef
from mbmsec.mbms.messages import MtkKey, build_mtk_message
from mbmsec.sim.engine import Address
from mbmsec.sim.world import BMSC_ADDR, KD, build_world
from mbmsec.ue.events import WantKind

T0 = 1_700_000_000.0
ATTACKER: Address = ("10.66.6.6", 2269)
FORGED_FIRST = 30_000  # key numbers far from the BM-SC's own


def _forged_mtk(key_number: int) -> bytes:
    ref = MskRef(KD, MskId(1, key_number))
    mtk = MtkKey(ref, 1, bytes(16), bytes(14))
    return build_mtk_message(mtk, bytes(16), 1, csb_id=key_number, rand=bytes(16))


def test_forged_mtk_messages_do_not_cause_endless_requests_or_state() -> None:
    world = build_world(1, profile="compact", seed=41)
    sent: list[tuple[float, bytes]] = []
    world.sim.add_tap(
        lambda src, dst, data, ts: sent.append((ts, data)) if dst == BMSC_ADDR else None
    )
    world.run_until(T0 + 50)
    ue = world.ues[0]
    assert world.is_current(0, world.services[0])
    n_forged = 40
    for k in range(n_forged):
        ue.receive_datagram(_forged_mtk(FORGED_FIRST + k), ATTACKER, world.sim.now)
        world.sim.poll_all()
        world.run_until(world.sim.now + 3.0)
    stopped = world.sim.now
    world.run_until(stopped + 400)  # many cooldowns after the attacker stopped

    def forged_named(data: bytes) -> bool:
        try:
            req = parse_key_request(data)
        except DecodeError:
            return False
        return any(m.key_number >= FORGED_FIRST for m in req.key_ref.msk_ids)

    during = [t for t, d in sent if t <= stopped and forged_named(d)]
    late = [t for t, d in sent if t > stopped + 60 and forged_named(d)]
    assert during, "the UE does ask for an unknown MSK (missed key update)"
    assert late == [], f"{len(late)} requests for forged MSKs long after the attack stopped"
    msk_wants = [w for w in ue.wants if w.kind is WantKind.MSK]
    assert len(msk_wants) <= 4 * ue.config.max_msk_wants
    assert world.is_current(0, world.services[0])  # the real keys kept flowing
