"""BM-SC core, 3GPP profile: HTTP digest key management, MSK push with verification, retries,
next-MSK pushes to registrations, error statuses; XML bodies both ways."""

from __future__ import annotations

import pytest
from bmsc_env import KD, T0, USERS, Ue, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.core import BmscCore, DeliveryConfirmed, PushAbandoned
from mbmsec.bmsc.http_handler import btid_of_request
from mbmsec.bmsc.http_xml import (
    MskStatus,
    ServiceStatus,
    build_msk_request,
    build_registration,
    parse_msk_response,
    parse_registration_response,
    parse_request_body,
)
from mbmsec.errors import CounterNotIncreasingError, DecodeError
from mbmsec.gba.digest import (
    naf_password,
    parse_authentication_info,
    parse_authorization,
    parse_www_authenticate,
    verify_rspauth,
)
from mbmsec.httpmsg import HttpRequest
from mbmsec.mbms.keys import MskId, MskRef
from mbmsec.mbms.messages import build_msk_verification, check_msk_message
from mbmsec.mbms.mgvf import check_msk_counter
from mbmsec.store.bmsc_memory import MemoryBmscStore

UE_ADDR = ("10.0.0.7", 40000)
NOW = T0 + 30


def _setup(**svc: object) -> tuple[BmscCore, MemoryBmscStore, Ue]:
    bsf = make_bsf()
    store = MemoryBmscStore()
    core = make_core(store, bsf)
    core.add_service(service(**svc), T0)
    return core, store, bootstrap(bsf, USERS[0], T0)


def _pushes(core: BmscCore, now: float) -> list[bytes]:
    return [d for d, a in core.datagrams_to_send(now) if a == UE_ADDR]


def test_register_pushes_first_key_and_verification_confirms() -> None:
    core, store, ue = _setup()
    body = build_registration(["urn:svc:news"], mikey_port=40000)
    resp = ue.http(core, "register", body, NOW)
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/mbms-register-response+xml"
    assert parse_registration_response(resp.body) == [ServiceStatus("urn:svc:news", 200)]
    creds = parse_authorization(ue.last_request.header("Authorization") or "")
    info = parse_authentication_info(resp.header("Authentication-Info") or "")
    verify_rspauth(info, creds, password=naf_password(ue.mrk), entity_body=resp.body)
    reg = store.get_registration(USERS[0], "urn:svc:news")
    assert reg is not None and (reg.push_host, reg.push_port, reg.btid) == (
        "10.0.0.7",
        40000,
        ue.btid,
    )
    pushes = _pushes(core, NOW)
    assert len(pushes) == 1
    msg = check_msk_message(pushes[0], ue.muk, expected_muk_id=ue.muk_id)
    assert msg.v and check_msk_counter(msg.timestamp, None) == 1
    msk = store.msks_for_service("urn:svc:news")[0]
    assert msg.msks[0].key == msk.key
    ver = build_msk_verification(msg, ue.muk, ue.muk_id)
    core.receive_datagram(ver, UE_ADDR, NOW + 0.1)
    ev = core.next_event()
    assert isinstance(ev, DeliveryConfirmed) and ev.csb_id == msg.csb_id and ev.impi == USERS[0]
    rec = store.get_delivery(ue.btid, msg.csb_id)
    assert rec is not None and rec.confirmed_at == NOW + 0.1 and rec.counter == 1
    # the same verification again is unsolicited now
    core.receive_datagram(ver, UE_ADDR, NOW + 0.2)
    assert core.next_event() is None and core.stats["verification.unsolicited"] == 1
    # no retransmission after a confirmation
    core.handle_timer(NOW + 10)
    assert _pushes(core, NOW + 10) == []


def test_unconfirmed_push_is_retried_with_fresh_counter_then_abandoned() -> None:
    core, _, ue = _setup()
    ue.http(core, "register", build_registration(["urn:svc:news"], mikey_port=40000), NOW)
    first = check_msk_message(_pushes(core, NOW)[0], ue.muk)
    counters = [first.timestamp.value]
    t = NOW
    for _ in range(2):
        t += 3.0
        core.handle_timer(t)
        retry = [check_msk_message(d, ue.muk) for d in _pushes(core, t)]
        assert len(retry) == 1 and retry[0].csb_id != first.csb_id
        counters.append(retry[0].timestamp.value)
    assert counters == sorted(set(counters))
    core.handle_timer(t + 3.0)
    assert _pushes(core, t + 3.0) == []
    assert isinstance(core.next_event(), PushAbandoned)
    # a forged verification for an outstanding push is ignored
    core2, _, ue2 = _setup()
    ue2.http(core2, "register", build_registration(["urn:svc:news"], mikey_port=40000), NOW)
    msg = check_msk_message(_pushes(core2, NOW)[0], ue2.muk)
    core2.receive_datagram(build_msk_verification(msg, bytes(32), ue2.muk_id), UE_ADDR, NOW)
    assert core2.next_event() is None and core2.stats["verification.bad"] == 1


def test_next_msk_pushed_to_registrations_before_it_starts() -> None:
    core, _, ue = _setup(verification=False)
    ue.http(core, "register", build_registration(["urn:svc:news"], mikey_port=40000), NOW)
    assert len(_pushes(core, NOW)) == 1
    got = []
    t = core.get_timer()
    while t is not None and t < T0 + 600:
        t = max(t, NOW)
        core.handle_timer(t)
        got += [(t, check_msk_message(d, ue.muk)) for d in _pushes(core, t)]
        t = core.get_timer()
    assert len(got) == 1
    when, msg = got[0]
    assert T0 + 600 - 120 <= when < T0 + 600 and msg.msks[0].ref.msk_id == MskId(1, 2)
    assert msg.timestamp.value == 2 and not msg.v


def test_msk_request_statuses() -> None:
    core, store, ue = _setup(allowed_users=(USERS[0],))
    cur = store.msks_for_service("urn:svc:news")[0].ref
    refs = [cur, MskRef(KD, MskId(1, 7)), MskRef(KD, MskId(9, 1))]
    resp = ue.http(core, "msk-request", build_msk_request(refs, mikey_port=40000), NOW)
    assert resp.status == 200
    assert parse_msk_response(resp.body) == [
        MskStatus(refs[0], 200),
        MskStatus(refs[1], 410),
        MskStatus(refs[2], 404),
    ]
    assert len(_pushes(core, NOW)) == 1
    core2, _, ue2 = _setup(allowed_users=(USERS[1],))
    resp = ue2.http(core2, "register", build_registration(["urn:svc:news", "urn:svc:x"]), NOW)
    assert parse_registration_response(resp.body) == [
        ServiceStatus("urn:svc:news", 403),
        ServiceStatus("urn:svc:x", 404),
    ]
    assert core2.datagrams_to_send(NOW) == []


def test_deregister() -> None:
    core, store, ue = _setup()
    ue.http(core, "register", build_registration(["urn:svc:news"]), NOW)
    pushes = [a for _, a in core.datagrams_to_send(NOW)]
    assert pushes == [("10.0.0.7", 2269)]  # no mikeyPort: the IANA MIKEY port
    resp = ue.http(core, "deregister", build_registration(["urn:svc:news"], deregister=True), NOW)
    assert resp.status == 200 and store.get_registration(USERS[0], "urn:svc:news") is None


def test_digest_failures() -> None:
    core, _, ue = _setup()
    body = build_registration(["urn:svc:news"])
    assert ue.http(core, "register", body, NOW).status == 200
    req = ue.last_request
    assert btid_of_request(req) == ue.btid
    # replay of the exact same request: refused
    assert core.handle_http(req, NOW + 1).status == 401
    # stale nonce
    late = ue.http(core, "register", body, NOW)
    assert late.status == 200
    stale = core.handle_http(ue.last_request, NOW + 400)
    assert stale.status == 401
    assert parse_www_authenticate(stale.header("WWW-Authenticate") or "").stale
    # wrong password (MUK of another user)
    bad = Ue(ue.impi, ue.btid, bytes(32), ue.muk, ue.rng)
    assert bad.http(core, "register", body, NOW).status == 401
    # unknown B-TID: 401, the UE must bootstrap again
    ghost = Ue(ue.impi, "AAAA@bsf.home1.net", ue.mrk, ue.muk, ue.rng)
    assert ghost.http(core, "register", body, NOW).status == 401
    assert core.stats["http.401.btid_unknown"] == 1
    # bad body after good auth: 400
    assert ue.http(core, "register", b"<nope/>", NOW).status == 400
    # plumbing
    assert (
        core.handle_http(HttpRequest("GET", "/keymanagement?requesttype=register"), NOW).status
        == 405
    )
    assert core.handle_http(HttpRequest("POST", "/other"), NOW).status == 404
    assert core.handle_http(HttpRequest("POST", "/keymanagement?requesttype=x"), NOW).status == 400
    big = HttpRequest("POST", "/keymanagement?requesttype=register", (), b"x" * 20000)
    assert core.handle_http(big, NOW).status == 413
    junk = HttpRequest(
        "POST", "/keymanagement?requesttype=register", (("Authorization", "Digest x"),)
    )
    assert core.handle_http(junk, NOW).status == 400


@pytest.mark.parametrize(
    ("rtype", "body"),
    [
        ("register", b"<mbmsUserServiceRegistration/>"),
        ("register", b'<!DOCTYPE x [<!ENTITY a "b">]><mbmsUserServiceRegistration/>'),
        ("register", b"<mbmsUserServiceRegistration><serviceId/></mbmsUserServiceRegistration>"),
        ("register", b"<mbmsUserServiceRegistration><x>1</x></mbmsUserServiceRegistration>"),
        ("msk-request", b"<mbmsMSKRequest><keyId><MSKID>00</MSKID></keyId></mbmsMSKRequest>"),
        ("msk-request", b"<mbmsMSKRequest><mikeyPort>0</mikeyPort></mbmsMSKRequest>"),
        (
            "deregister",
            b"<mbmsUserServiceRegistration><serviceId>a</serviceId></mbmsUserServiceRegistration>",
        ),
        ("register", b"not xml"),
        ("nope", b""),
    ],
)
def test_bad_bodies(rtype: str, body: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_request_body(rtype, body)


def test_request_bodies_round_trip() -> None:
    refs = [MskRef(KD, MskId(1, 2))]
    req = parse_request_body("msk-request", build_msk_request(refs, mikey_port=5))
    assert (req.msks, req.mikey_port) == (tuple(refs), 5)
    req = parse_request_body("register", build_registration(["a&b", "c"]))
    assert req.service_ids == ("a&b", "c") and req.mikey_port is None


def test_replayed_msk_push_rejected_by_muk_counter() -> None:
    core, store, ue = _setup()
    ue.http(core, "register", build_registration(["urn:svc:news"], mikey_port=40000), NOW)
    first = _pushes(core, NOW)[0]
    ref = store.msks_for_service("urn:svc:news")[0].ref
    ue.http(core, "msk-request", build_msk_request([ref], mikey_port=40000), NOW + 1)
    second = _pushes(core, NOW + 1)[0]
    last = None
    for data in (first, second):
        last = check_msk_counter(check_msk_message(data, ue.muk).timestamp, last)
    for data in (first, second):  # replays of both are refused
        with pytest.raises(CounterNotIncreasingError):
            check_msk_counter(check_msk_message(data, ue.muk).timestamp, last)
