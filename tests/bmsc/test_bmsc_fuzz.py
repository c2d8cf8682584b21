"""BM-SC input invariants: any datagram is either dropped or answered within the size bound;
mutated requests never earn an authenticated answer; GBA_U keys split MRK / MUK."""

from __future__ import annotations

from bmsc_env import T0, USERS, bootstrap, make_bsf, make_core, service
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.bmsc.core import BmscCore
from mbmsec.gba.zn import ZnAnswer
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import DataType
from mbmsec.mikey.payloads import Verification
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.protocols import Guss

NOW = T0 + 50
ADDR = ("10.0.0.9", 40001)
BSF = make_bsf()
UE = bootstrap(BSF, USERS[0], T0)
CORE = make_core(MemoryBmscStore(), BSF)
CORE.add_service(service(), T0)
GOOD, _ = UE.request(NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_datagrams_never_raise_and_stay_small(data: bytes) -> None:
    out = CORE.handle_compact_datagram(data, ADDR, NOW)
    assert all(len(d) <= 3 * max(len(data), 1) for d, _ in out)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_mutated_request_gets_no_authenticated_answer(pos: int, delta: int) -> None:
    data = bytearray(GOOD)
    i = pos % len(data)
    data[i] = (data[i] + delta) % 256
    for d, addr in CORE.handle_compact_datagram(bytes(data), ADDR, NOW):
        assert addr == ADDR
        msg = decode_message(d)
        # only the unauthenticated "KEK not in place" error may answer a forged request
        assert msg.header.data_type == DataType.ERROR
        assert not any(isinstance(p, Verification) for p in msg.payloads)
        assert len(d) < len(data)


def test_gba_u_answer_splits_mrk_and_muk() -> None:
    a = ZnAnswer(
        "u@x",
        T0 + 100,
        T0,
        Guss(),
        ks_ext_naf=bytes(range(32)),
        ks_int_naf=bytes(range(32, 64)),
        uicc_me="GBA_U",
    )
    u = BmscCore._derive("b@bsf", a)
    assert u.gba_u and u.mrk == bytes(range(32))
    assert u.muk_prf.derive(b"label", 20) != u.mrk_prf.derive(b"label", 20)
    me = BmscCore._derive("b@bsf", ZnAnswer("u@x", T0 + 100, T0, Guss(), ks_naf=bytes(32)))
    assert not me.gba_u and me.muk_prf.derive(b"l", 20) == me.mrk_prf.derive(b"l", 20)
    assert "mrk" not in repr(u) and bytes(range(32)).hex() not in repr(u)
