"""BM-SC core, compact profile, virtual time: activation with first key, errors, replay,
forged MACs, Zn cache parking, size bound."""

from __future__ import annotations

from dataclasses import replace

from bmsc_env import FQDN, NAF_ID, T0, TOKEN, USERS, Rng, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.zn import LocalZnLookup, ZnAnswerCache
from mbmsec.errors import BsfUnreachableError, BtidUnknownError
from mbmsec.gba.zn import ZnAnswer
from mbmsec.mbms.compact import KeyErrorReply, build_key_request
from mbmsec.mbms.keys import KeyRef, MskId, MskRef
from mbmsec.mbms.messages import MskMessage
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import DataType
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.protocols import Guss

ADDR = ("10.0.0.7", 40000)
NOW = T0 + 100.0


def _setup(**svc: object):  # type: ignore[no-untyped-def]
    bsf = make_bsf()
    store = MemoryBmscStore()
    core = make_core(store, bsf)
    core.add_service(service(**svc), T0)
    return bsf, store, core, bootstrap(bsf, USERS[0], T0)


def test_activation_with_first_key() -> None:
    _, store, core, ue = _setup()
    data, pending = ue.request(NOW)
    out = core.handle_compact_datagram(data, ADDR, NOW)
    assert [a for _, a in out] == [ADDR]
    got = ue.check(out[0][0], pending)
    assert isinstance(got, MskMessage) and len(got.msks) == 1
    msk = store.msks_for_service("urn:svc:news")[0]
    assert got.msks[0].ref == msk.ref and got.msks[0].key == msk.key
    assert (got.msks[0].mtk_id_first, got.msks[0].mtk_id_last) == (1, 10)
    assert len(out[0][0]) <= 3 * len(data)
    # by MSK ID too
    data2, pending2 = ue.request(
        NOW + 1, key_domain_id=msk.ref.key_domain_id, msk_ids=(msk.ref.msk_id,)
    )
    got2 = ue.check(core.handle_compact_datagram(data2, ADDR, NOW + 1)[0][0], pending2)
    assert isinstance(got2, MskMessage) and got2.msks[0].key == msk.key


def test_next_msk_offered_within_lead_and_bound_holds() -> None:
    _, store, core, ue = _setup()
    t = T0 + 600 - 100  # inside the 120 s lead of MSK 1
    data, pending = ue.request(t)
    resp = core.handle_compact_datagram(data, ADDR, t)[0][0]
    got = ue.check(resp, pending)
    assert isinstance(got, MskMessage)
    assert [m.ref.msk_id for m in got.msks] == [MskId(1, 1), MskId(1, 2)]
    assert len(resp) <= 3 * len(data)
    nxt = store.get_msk(MskRef(got.msks[1].ref.key_domain_id, MskId(1, 2)))
    assert nxt is not None and nxt.valid_from == T0 + 600 and nxt.key == got.msks[1].key


def test_replayed_request_and_response_rejected() -> None:
    _, _, core, ue = _setup()
    data, pending = ue.request(NOW)
    resp = core.handle_compact_datagram(data, ADDR, NOW)[0][0]
    assert core.handle_compact_datagram(data, ADDR, NOW + 2) == []
    assert core.stats["compact.replayed"] == 1
    _, pending2 = ue.request(NOW + 3)
    try:
        ue.check(resp, pending2)
    except Exception as exc:  # DecodeError: not an answer to this request
        assert type(exc).__name__ == "DecodeError"
    else:
        raise AssertionError("old response accepted for a new request")
    assert isinstance(ue.check(resp, pending), MskMessage)


def test_forged_mac_and_wrong_key_get_no_answer() -> None:
    _, _, core, ue = _setup()
    data, _ = ue.request(NOW)
    forged = data[:-1] + bytes([data[-1] ^ 1])
    assert core.handle_compact_datagram(forged, ADDR, NOW) == []
    other, _ = build_key_request(
        btid=ue.btid,
        key_ref=KeyRef(service_id="urn:svc:news"),
        mrk=bytes(32),
        now=NOW,
        rng=Rng("x"),
    )
    assert core.handle_compact_datagram(other, ADDR, NOW) == []
    assert core.stats["compact.bad_mac"] == 2
    assert core.handle_compact_datagram(b"\x01\xf1junk", ADDR, NOW) == []
    # the genuine request still works after the forgeries
    assert len(core.handle_compact_datagram(data, ADDR, NOW)) == 1


def _error(core, ue, t: float, **ref: object) -> KeyErrorReply:  # type: ignore[no-untyped-def]
    data, pending = ue.request(t, **ref)
    out = core.handle_compact_datagram(data, ADDR, t)
    assert len(out) == 1 and len(out[0][0]) < len(data) + 8
    got = ue.check(out[0][0], pending)
    assert isinstance(got, KeyErrorReply)
    return got


def test_authenticated_error_causes() -> None:
    _, _, core, ue = _setup(allowed_users=(USERS[1],))
    assert _error(core, ue, NOW) == KeyErrorReply((244,), True)  # not authorised
    assert _error(core, ue, NOW + 1, service_id="urn:svc:nope") == KeyErrorReply((243,), True)
    _, _, core, ue = _setup()
    gone = dict(key_domain_id=bytes.fromhex("62f210"), msk_ids=(MskId(1, 9),))
    assert _error(core, ue, NOW, **gone) == KeyErrorReply((245,), True)
    # a UE clock 1000 s behind: authenticated Error 1 (invalid timestamp)
    data, pending = ue.request(NOW - 1000)
    got = ue.check(core.handle_compact_datagram(data, ADDR, NOW)[0][0], pending)
    assert got == KeyErrorReply((1,), True)


def test_kek_not_in_place_errors_are_unauthenticated() -> None:
    bsf, _, core, ue = _setup()
    bsf.sessions.delete(ue.btid)  # the BSF forgot the B-TID
    got = _error(core, ue, NOW)
    assert got == KeyErrorReply((241,), False)
    msg = decode_message(core.handle_compact_datagram(ue.request(NOW + 1)[0], ADDR, NOW + 1)[0][0])
    assert msg.header.data_type == DataType.ERROR and len(msg.payloads) == 2  # T, ERR: no V
    # stale T and no key: silence (nothing reflected)
    assert core.handle_compact_datagram(ue.request(NOW - 1000)[0], ADDR, NOW) == []
    # key lifetime over: 241 as well
    _, _, core2, ue2 = _setup()
    assert _error(core2, ue2, T0 + 86400 + 5) == KeyErrorReply((241,), False)


def test_zn_cache_parks_then_answers_and_fails() -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    cache = ZnAnswerCache()
    core = make_core(MemoryBmscStore(), zn=cache)
    core.add_service(service(), T0)
    data, pending = ue.request(NOW)
    assert core.handle_compact_datagram(data, ADDR, NOW) == []  # parked
    assert cache.take_wanted() == [ue.btid] and cache.take_wanted() == []

    answer: ZnAnswer = LocalZnLookup(bsf, NAF_ID, ("bmsc", TOKEN)).lookup(ue.btid, NOW)
    cache.put(ue.btid, answer)
    core.on_zn_ready(ue.btid, NOW + 0.05)
    out = core.datagrams_to_send(NOW + 0.05)
    assert len(out) == 1 and isinstance(ue.check(out[0][0], pending), MskMessage)
    # an unreachable BSF: 242, unauthenticated
    ue2 = bootstrap(bsf, USERS[1], T0)
    d2, p2 = ue2.request(NOW)
    assert core.handle_compact_datagram(d2, ADDR, NOW) == []
    cache.fail(ue2.btid, BsfUnreachableError("down"), NOW)
    core.on_zn_ready(ue2.btid, NOW)
    assert ue2.check(core.datagrams_to_send(NOW)[0][0], p2) == KeyErrorReply((242,), False)
    cache.fail(ue2.btid, BtidUnknownError("gone"), NOW)
    d3, p3 = ue2.request(NOW + 1)
    assert ue2.check(core.handle_compact_datagram(d3, ADDR, NOW + 1)[0][0], p3) == KeyErrorReply(
        (241,), False
    )


def test_guss_service_list_restricts() -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    cache = ZnAnswerCache()

    from bmsc_env import NAF_ID, TOKEN

    a = LocalZnLookup(bsf, NAF_ID, ("bmsc", TOKEN)).lookup(ue.btid, NOW)
    cache.put(ue.btid, replace(a, guss=Guss(mbms_service_ids=("urn:svc:other",))))
    core = make_core(MemoryBmscStore(), zn=cache)
    core.add_service(service(), T0)
    data, pending = ue.request(NOW)
    assert ue.check(core.handle_compact_datagram(data, ADDR, NOW)[0][0], pending) == KeyErrorReply(
        (244,), True
    )
    assert FQDN in repr(core)
