"""Tests for the MGV-F rules (mbmsec.mbms.mgvf): MAC, COUNTER > last, MTK ID > current and in
the MSK's validity; a rejected message leaves the state untouched."""

from __future__ import annotations

import pytest

from mbmsec.errors import AuthError, CounterNotIncreasingError, InvalidValueError
from mbmsec.mbms import mgvf as G
from mbmsec.mbms.keys import MskId, MskRef
from mbmsec.mbms.messages import MskKey, MtkKey, build_mtk_message
from mbmsec.mikey.constants import TsType
from mbmsec.mikey.payloads import Timestamp
from mbmsec.mikey.prf import Prf

KD = bytes.fromhex("62f210")
REF = MskRef(KD, MskId(1, 5))
MSK = bytes(range(16))
RAND = bytes(16)


def _mtk(mtk_id: int, counter: int, msk: bytes = MSK, ref: MskRef = REF) -> bytes:
    mtk = MtkKey(ref, mtk_id, bytes([mtk_id]) * 16, bytes(14))
    return build_mtk_message(mtk, msk, counter, csb_id=mtk_id, rand=RAND)


def test_first_then_increasing() -> None:
    st0 = G.MskState(MskKey(REF, MSK, 1, 10))
    mtk, st1 = G.mgvf_mtk(_mtk(1, 1), st0)
    assert mtk.mtk_id == 1 and mtk.key == bytes([1]) * 16
    assert (st1.last_counter, st1.current_mtk_id) == (1, 1)
    mtk, st2 = G.mgvf_mtk(_mtk(3, 7), st1)
    assert (st2.last_counter, st2.current_mtk_id) == (7, 3)
    # precomputed PRF state works the same
    st_p = G.MskState(MskKey(REF, MSK, 1, 10), psk=Prf(MSK))
    assert G.mgvf_mtk(_mtk(2, 2), st_p)[0].mtk_id == 2


def test_replay_and_rollback_rejected() -> None:
    st = G.mgvf_mtk(_mtk(2, 5), G.MskState(MskKey(REF, MSK, 1, 10)))[1]
    with pytest.raises(G.MtkIdNotIncreasingError):
        G.mgvf_mtk(_mtk(2, 5), st)  # exact replay
    with pytest.raises(G.MtkIdNotIncreasingError):
        G.mgvf_mtk(_mtk(2, 6), st)  # same MTK re-announced with a fresh counter
    with pytest.raises(CounterNotIncreasingError):
        G.mgvf_mtk(_mtk(3, 5), st)  # new MTK ID but old counter
    with pytest.raises(G.MtkIdOutOfRangeError):
        G.mgvf_mtk(_mtk(11, 9), st)  # outside the MSK's validity
    assert G.mgvf_mtk(_mtk(3, 6), st)[1].current_mtk_id == 3


def test_forged_mac_rejected_without_state_change() -> None:
    st = G.MskState(MskKey(REF, MSK, 1, 10))
    with pytest.raises(AuthError):
        G.mgvf_mtk(_mtk(1, 1, msk=bytes(16)), st)
    data = bytearray(_mtk(1, 1))
    data[-1] ^= 0x80
    with pytest.raises(AuthError):
        G.mgvf_mtk(bytes(data), st)
    assert st.last_counter is None and st.current_mtk_id is None


def test_message_for_other_msk_rejected() -> None:
    st = G.MskState(MskKey(REF, MSK, 1, 10))
    with pytest.raises(InvalidValueError):
        G.mgvf_mtk(_mtk(1, 1, ref=MskRef(KD, MskId(1, 6))), st)


def test_msk_counter_rule() -> None:
    assert G.check_msk_counter(Timestamp(TsType.COUNTER, 3), None) == 3
    assert G.check_msk_counter(Timestamp(TsType.COUNTER, 4), 3) == 4
    with pytest.raises(CounterNotIncreasingError):
        G.check_msk_counter(Timestamp(TsType.COUNTER, 3), 3)
    with pytest.raises(InvalidValueError):
        G.check_msk_counter(Timestamp(TsType.NTP_UTC, 1 << 40), None)
