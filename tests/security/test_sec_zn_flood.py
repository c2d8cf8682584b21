"""A flood of key requests naming made-up B-TIDs (no key needed to send them) must not turn
into an unbounded number of Zn lookups in flight towards the BSF.

Real BM-SC core over the networked Zn cache (the sans-I/O half of the net driver), a real BSF
for the genuine UE (tests/bmsc/bmsc_env.py), virtual time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bmsc"))

from bmsc_env import NAF_ID, T0, TOKEN, USERS, Rng, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.zn import LocalZnLookup, ZnAnswerCache
from mbmsec.mbms.compact import KeyErrorReply, build_key_request, check_key_response
from mbmsec.mbms.keys import KeyRef, MukId
from mbmsec.mbms.messages import MskMessage
from mbmsec.store.bmsc_memory import MemoryBmscStore

NOW = T0 + 10
ADDR = ("10.9.9.9", 40000)


def test_zn_lookups_in_flight_are_bounded() -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    cache = ZnAnswerCache(max_in_flight=64)
    core = make_core(MemoryBmscStore(), zn=cache)
    core.add_service(service(), T0)
    rng = Rng("attacker")
    in_flight: set[str] = set()
    for i in range(500):  # each with a fresh made-up B-TID and a junk MRK
        data, pending = build_key_request(
            btid=f"fake{i}@bsf.home1.net",
            key_ref=KeyRef(service_id="urn:svc:news"),
            mrk=bytes(32),
            now=NOW,
            rng=rng,
        )
        out = core.handle_compact_datagram(data, ADDR, NOW)
        in_flight.update(cache.take_wanted())  # what the net driver would fetch now
        for d, _ in out:  # over the bound: "BSF unreachable, retry", 24 bytes, unauthenticated
            got = check_key_response(
                d, pending, muk=bytes(32), mrk=bytes(32), muk_id=MukId.of("x", "y")
            )
            assert got == KeyErrorReply((242,), False) and len(d) < len(data)
    assert len(in_flight) <= 64
    # the lookups finish (unknown B-TIDs): room again for the genuine UE
    from mbmsec.errors import BtidUnknownError

    for b in in_flight:
        cache.fail(b, BtidUnknownError("unknown"), NOW)
    data, pending = ue.request(NOW)
    assert core.handle_compact_datagram(data, ADDR, NOW) == []  # parked, lookup wanted
    assert cache.take_wanted() == [ue.btid]
    cache.put(ue.btid, LocalZnLookup(bsf, NAF_ID, ("bmsc", TOKEN)).lookup(ue.btid, NOW))
    core.on_zn_ready(ue.btid, NOW)
    out = core.datagrams_to_send(NOW)
    assert len(out) == 1 and isinstance(ue.check(out[0][0], pending), MskMessage)
