"""The UE key client against the real BSF and BM-SC, on virtual time (sim/world.py).

Everything here is a real component (HSS, BSF, BmscCore, UeKeyClient, BootstrapClient); only the
network is simulated. Service timing (sim/world.py): MSK 120 s (offered 60 s ahead), MTK 20 s
(announced 5 s ahead, every 1 s).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mbmsec.mbms.keys import MskId, MskRef
from mbmsec.sim.engine import Address
from mbmsec.sim.world import KD, World, build_world
from mbmsec.ue import events as ev
from mbmsec.ue.client import ServiceConfig
from mbmsec.ue.events import Want, WantKind
from mbmsec.ue.machine import RState

T0 = 1_700_000_000.0
SID = "urn:mbmsec:sim:tv"


def mids(start: float, end: float) -> list[float]:
    """Middle of every MTK period of the default service in [start, end)."""
    k0 = int((start - T0) // 20) + 1
    return [T0 + 20 * k + 10 for k in range(k0, int((end - T0) // 20))]


def events_of(world: World, i: int, kind: type[ev.UeEvent]) -> list[ev.UeEvent]:
    return [e for j, e in world.events if j == i and isinstance(e, kind)]


def run_checking_current(world: World, end: float, start: float = T0 + 30) -> None:
    for t in mids(start, end):
        world.run_until(t)
        assert world.all_current() == [], f"UEs not current at t0+{t - T0:.0f}"


@pytest.mark.parametrize("profile", ["compact", "3gpp"])
def test_activation_and_rotations_keep_every_ue_current(profile: str) -> None:
    world = build_world(3, profile=profile, seed=7)
    run_checking_current(world, T0 + 400)
    for i in range(3):
        assert not events_of(world, i, ev.RequestGaveUp)
        installed = [e.msk_id for e in events_of(world, i, ev.MskInstalled)]  # type: ignore[attr-defined]
        assert installed[:4] == [str(MskRef(KD, MskId(1, n))) for n in (1, 2, 3, 4)]
    if profile == "3gpp":
        assert world.core.stats.get("verification.ok", 0) >= 3 * 4
        assert all(events_of(world, i, ev.Registered) for i in range(3))


def test_expiry_drives_the_renewal_request_before_the_msk_ends() -> None:
    world = build_world(1, profile="compact", seed=3)
    world.run_until(T0 + 125)
    renewals = [e for e in events_of(world, 0, ev.RequestSent) if e.why == "renewal"]  # type: ignore[attr-defined]
    assert renewals, "no expiry-driven request"
    first = renewals[0]
    # MSK 1 ends at T0+120; MSK 2 is offered from T0+60. The request falls in between.
    assert T0 + 60 <= first.at < T0 + 120
    msk2 = str(MskRef(KD, MskId(1, 2)))
    got = [e for e in events_of(world, 0, ev.MskInstalled) if e.msk_id == msk2]  # type: ignore[attr-defined]
    assert got and got[0].at < T0 + 120
    assert world.is_current(0, world.services[0])


def test_unknown_msk_in_mtk_message_drives_a_request() -> None:
    # The UE knows its service's key group (from the USD); it is cut off from T0+10 to T0+250
    # and so misses MSK 2 entirely; back on the network it hears MTK messages under MSK 3.
    world = build_world(1, profile="compact", seed=11)
    ue = world.ues[0]
    ue.config = replace(ue.config, services=(ServiceConfig(SID, KD, 1),))
    world.run_until(T0 + 10)
    addr: Address = ("10.1.0.1", 2269)
    world.sim.set_up(addr, False)
    world.run_until(T0 + 250)
    assert not world.is_current(0, world.services[0])
    world.sim.set_up(addr, True)
    world.run_until(T0 + 275)
    reasons = [
        e.why  # type: ignore[attr-defined]
        for e in events_of(world, 0, ev.RequestSent)
        if e.at >= T0 + 250
    ]
    assert "unknown MSK in MTK message" in reasons
    assert world.is_current(0, world.services[0])


def test_unknown_msk_in_srtp_mki_drives_a_request() -> None:
    world = build_world(1, profile="3gpp", seed=5)
    world.run_until(T0 + 50)
    ue = world.ues[0]
    msk2 = MskRef(KD, MskId(1, 2))
    assert not ue.keys.has_msk(msk2)
    # T0+50: MSK 2 is not offered yet (from T0+60): the BM-SC answers 410, the UE backs off
    world.run_until(T0 + 65)
    if not ue.keys.has_msk(msk2):  # a push may have brought it already; force the MKI path
        ue.note_srtp_mki(msk2.msk_id.value, 1, world.sim.now)
        world.sim.poll_all()
        world.run_until(T0 + 70)
        sent = [e for e in events_of(world, 0, ev.RequestSent) if "SRTP MKI" in e.why]  # type: ignore[attr-defined]
        assert sent
    assert ue.keys.has_msk(msk2)
    # an MKI naming a key group of no configured service is ignored
    before = dict(ue.wants)
    ue.note_srtp_mki(MskId(7, 1).value, 1, world.sim.now)
    assert ue.wants == before


@pytest.mark.parametrize("profile", ["compact", "3gpp"])
def test_bsf_outage_is_answered_with_a_cause_then_recovers(profile: str) -> None:
    world = build_world(2, profile=profile, seed=21)
    world.zn.up = False  # Ub works, Zn does not: the BM-SC cannot get the NAF keys
    world.run_until(T0 + 20)
    for i in range(2):
        assert events_of(world, i, ev.Bootstrapped)
        refused = events_of(world, i, ev.RequestRefused)
        assert refused, "no error cause reached the UE"
        if profile == "compact":
            assert {e.cause for e in refused} == {242}  # type: ignore[attr-defined]
            assert not any(e.authenticated for e in refused)  # type: ignore[attr-defined]
        else:
            assert {e.cause for e in refused} == {503}  # type: ignore[attr-defined]
        assert not events_of(world, i, ev.MskInstalled)
    # full outage: Ub too; a UE that must bootstrap now fails, and keeps trying
    world.set_bsf_up(False)
    late = world.ues[1]
    late.keys.store.delete_muk(late.idi)
    world.run_until(T0 + 60)
    assert events_of(world, 1, ev.BootstrapFailed)
    world.set_bsf_up(True)
    run_checking_current(world, T0 + 200, start=T0 + 140)
    for i in range(2):
        assert events_of(world, i, ev.MskInstalled)


def test_btid_expiry_triggers_bootstrap_first() -> None:
    world = build_world(2, profile="mixed", seed=9, key_lifetime=700.0)
    run_checking_current(world, T0 + 1000)
    for i in range(2):
        boots = events_of(world, i, ev.Bootstrapped)
        assert len(boots) >= 2
        # the second bootstrap comes before the first B-TID expired (margin 300 s)
        assert boots[1].at < boots[0].expires  # type: ignore[attr-defined]
    assert len(events_of(world, 1, ev.Registered)) >= 2  # 3GPP: registered again, new B-TID


def test_btid_unknown_at_the_bsf_makes_the_ue_bootstrap_again() -> None:
    world = build_world(1, profile="compact", seed=13)
    world.run_until(T0 + 30)
    btid = events_of(world, 0, ev.Bootstrapped)[0].btid  # type: ignore[attr-defined]
    world.bsf.sessions.delete(btid)
    world.core.forget_user(btid)
    run_checking_current(world, T0 + 300, start=T0 + 140)
    refused = events_of(world, 0, ev.RequestRefused)
    assert refused and refused[0].cause == 241  # type: ignore[attr-defined]
    assert len(events_of(world, 0, ev.Bootstrapped)) == 2


def test_give_up_is_reported_and_an_unreachable_ue_recovers() -> None:
    world = build_world(1, profile="compact", seed=17)
    addr: Address = ("10.1.0.1", 2269)
    world.run_until(T0 + 50)  # three MTKs seen: the UE knows the MTK period
    world.sim.set_up(addr, False)
    world.run_until(T0 + 400)
    gave_up = events_of(world, 0, ev.RequestGaveUp)
    assert gave_up, "requests into the void must end in a reported give-up"
    world.sim.set_up(addr, True)
    run_checking_current(world, T0 + 600, start=T0 + 480)
    assert world.ues[0].want_state(Want(WantKind.SERVICE, SID)) in (RState.IDLE, RState.GAVE_UP)


@pytest.mark.parametrize("profile, cause", [("compact", 245), ("3gpp", 410)])
def test_unavailable_named_msk_falls_back_to_the_service(profile: str, cause: int) -> None:
    world = build_world(1, profile=profile, seed=23)
    world.run_until(T0 + 30)
    ue = world.ues[0]
    future = MskId(1, 40)  # a key number the BM-SC will not offer for a long time
    ue.note_srtp_mki(future.value, 1, world.sim.now)
    world.sim.poll_all()
    world.run_until(T0 + 45)
    refused = [e for e in events_of(world, 0, ev.RequestRefused) if e.cause == cause]  # type: ignore[attr-defined]
    assert refused and refused[0].want == f"msk:{MskRef(KD, future)}"  # type: ignore[attr-defined]
    gave_up = events_of(world, 0, ev.RequestGaveUp)
    assert gave_up and gave_up[0].want == f"msk:{MskRef(KD, future)}"  # type: ignore[attr-defined]
    # asked by ID once per attempt until refused; then not again (the service's keys are held)
    msk_sent = [e for e in events_of(world, 0, ev.RequestSent) if "msk:" in e.want]  # type: ignore[attr-defined]
    assert msk_sent and all(e.at <= refused[-1].at for e in msk_sent)
    assert ue.want_state(Want(WantKind.MSK, msk=MskRef(KD, future))) is RState.GAVE_UP
    assert world.is_current(0, world.services[0])
