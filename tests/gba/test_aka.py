"""UMTS AKA (TS 33.102 §6.3): vectors, AUTN checks, sync failure, AUTS and HSS resync."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.errors import AkaMacError, AuthError, SyncFailureError
from mbmsec.gba.aka import (
    AUTS_LEN,
    DELTA,
    IND_BITS,
    SQN_MAX,
    AuthVector,
    SqnState,
    Usim,
    build_auts,
    generate_av,
    next_sqn,
    resync,
    sqn_after_resync,
    sqn_from_bytes,
    sqn_ind,
    sqn_join,
    sqn_seq,
    sqn_to_bytes,
    verify_autn,
)

# Milenage test set 1 (TS 35.208 §4.3.1)
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
SQN = 0xFF9BB4D0B607
AMF = bytes.fromhex("b9b9")
AK = bytes.fromhex("aa689c648370")
AK_STAR = bytes.fromhex("451e8beca43b")
MAC_S = bytes.fromhex("01cfaf9ec4e871e9")  # f1* with AMF b9b9 (test set), not the dummy AMF


def test_generate_av_set1() -> None:
    av = generate_av(K, OPC, SQN, AMF, RAND)
    assert av.rand == RAND
    assert av.xres == bytes.fromhex("a54211d5e3ba50bf")
    assert av.ck == bytes.fromhex("b40ba9a3c58b2a05bbf0d987b21bf8cb")
    assert av.ik == bytes.fromhex("f769bcd751044604127672711c6d3441")
    # spec-digest §4.2: AUTN = SQN xor AK || AMF || MAC-A
    assert av.autn == bytes.fromhex("55f328b43577b9b94a9ffac354dfafb3")
    assert av.ks == av.ck + av.ik


def test_av_repr_hides_keys() -> None:
    av = generate_av(K, OPC, SQN, AMF, RAND)
    r = repr(av)
    for secret in (av.xres, av.ck, av.ik):
        assert secret.hex() not in r
    assert "xres" not in r and "ck=" not in r


def test_verify_autn_ok() -> None:
    av = generate_av(K, OPC, SQN, AMF, RAND)
    # SQN_MS below SQN by less than DELTA in SEQ terms
    state = SqnState(sqn_ms=SQN - (100 << IND_BITS))
    res = verify_autn(K, OPC, RAND, av.autn, state)
    assert (res.res, res.ck, res.ik, res.sqn) == (av.xres, av.ck, av.ik, SQN)
    assert res.ks == av.ks


def test_mac_failure() -> None:
    av = generate_av(K, OPC, 1 << IND_BITS, AMF, RAND)
    for i in range(16):
        bad = bytearray(av.autn)
        bad[i] ^= 0x01
        with pytest.raises(AkaMacError) as ei:
            verify_autn(K, OPC, RAND, bytes(bad), SqnState())
        assert isinstance(ei.value, AuthError)
        assert ei.value.http_status == 401
    # wrong RAND or key also fails the MAC
    with pytest.raises(AkaMacError):
        verify_autn(K, OPC, bytes(16), av.autn, SqnState())
    with pytest.raises(AkaMacError):
        verify_autn(bytes(16), OPC, RAND, av.autn, SqnState())


def test_mac_checked_before_sqn() -> None:
    # SQN would be stale AND MAC is bad: the MAC failure wins (§6.3.3 order).
    state = SqnState().accept(5 << IND_BITS)
    av = generate_av(K, OPC, 1 << IND_BITS, AMF, RAND)
    bad = av.autn[:-1] + bytes([av.autn[-1] ^ 0x80])
    with pytest.raises(AkaMacError):
        verify_autn(K, OPC, RAND, bad, state)


def test_sync_failure_carries_auts_and_hss_recovers_sqn_ms() -> None:
    usim = Usim(K, OPC)
    # Accept one fresh vector, then replay it: stale SQN -> sync failure.
    sqn1 = sqn_join(10, 3)
    av1 = generate_av(K, OPC, sqn1, AMF, RAND)
    usim.authenticate(RAND, av1.autn)
    assert usim.sqn_state.sqn_ms == sqn1
    with pytest.raises(SyncFailureError) as ei:
        usim.authenticate(RAND, av1.autn)
    auts = ei.value.auts
    assert len(auts) == AUTS_LEN
    assert usim.sqn_state.sqn_ms == sqn1  # unchanged
    assert auts == build_auts(K, OPC, sqn1, RAND)
    assert resync(K, OPC, RAND, auts) == sqn1
    # the HSS continues from SQN_MS; the next vector is accepted
    sqn_he = sqn_after_resync(sqn1, sqn1)
    av2 = generate_av(K, OPC, next_sqn(sqn_he), AMF, RAND)
    assert usim.authenticate(RAND, av2.autn).sqn == next_sqn(sqn1)


def test_auts_structure_matches_milenage() -> None:
    # AUTS = (SQN_MS xor AK*) || f1*(SQN_MS, RAND, AMF=0000)
    from mbmsec.gba.milenage import Milenage

    sqn_ms = 0x0000000012A0
    auts = build_auts(K, OPC, sqn_ms, RAND)
    conc = bytes(a ^ b for a, b in zip(sqn_to_bytes(sqn_ms), AK_STAR, strict=True))
    assert auts[:6] == conc
    assert auts[6:] == Milenage(K, OPC).f1star(RAND, sqn_to_bytes(sqn_ms), b"\x00\x00")
    assert auts[6:] != MAC_S


def test_resync_rejects_bad_mac_s() -> None:
    auts = build_auts(K, OPC, 12345, RAND)
    for i in range(AUTS_LEN):
        bad = bytearray(auts)
        bad[i] ^= 0x40
        with pytest.raises(AkaMacError):
            resync(K, OPC, RAND, bytes(bad))
    with pytest.raises(AkaMacError):
        resync(K, OPC, bytes(16), auts)
    with pytest.raises(ValueError):
        resync(K, OPC, RAND, auts[:-1])


def test_sqn_out_of_window_ahead() -> None:
    # SEQ more than DELTA ahead of SEQ_MS -> sync failure (Annex C.2.2)
    state = SqnState()
    far = sqn_join(DELTA + 1, 0)
    av = generate_av(K, OPC, far, AMF, RAND)
    with pytest.raises(SyncFailureError) as ei:
        verify_autn(K, OPC, RAND, av.autn, state)
    assert resync(K, OPC, RAND, ei.value.auts) == 0
    ok = sqn_join(DELTA, 0)
    assert verify_autn(K, OPC, RAND, generate_av(K, OPC, ok, AMF, RAND).autn, state).sqn == ok


def test_ind_array_allows_out_of_order_use() -> None:
    # Annex C.2.1: vectors with different IND may be used out of order.
    usim = Usim(K, OPC)
    sqn_a, sqn_b = sqn_join(5, 1), sqn_join(4, 2)
    usim.authenticate(RAND, generate_av(K, OPC, sqn_a, AMF, RAND).autn)
    usim.authenticate(RAND, generate_av(K, OPC, sqn_b, AMF, RAND).autn)
    assert usim.sqn_state.sqn_ms == sqn_a  # highest stays
    # same IND, not larger -> rejected
    with pytest.raises(SyncFailureError):
        usim.authenticate(RAND, generate_av(K, OPC, sqn_join(4, 1), AMF, RAND).autn)


def test_age_limit_l() -> None:
    state = SqnState(limit=3).accept(sqn_join(10, 0))
    assert state.is_fresh(sqn_join(7, 1))
    assert not state.is_fresh(sqn_join(6, 1))
    assert SqnState().accept(sqn_join(10, 0)).is_fresh(sqn_join(1, 1))


def test_sqn_helpers() -> None:
    assert sqn_to_bytes(SQN) == bytes.fromhex("ff9bb4d0b607")
    assert sqn_from_bytes(bytes.fromhex("ff9bb4d0b607")) == SQN
    assert sqn_join(sqn_seq(SQN), sqn_ind(SQN)) == SQN
    assert next_sqn(sqn_join(7, 31)) == sqn_join(8, 0)
    assert next_sqn(sqn_join(7, 3)) == sqn_join(8, 4)
    with pytest.raises(ValueError):
        sqn_to_bytes(SQN_MAX + 1)
    with pytest.raises(ValueError):
        sqn_to_bytes(-1)
    with pytest.raises(ValueError):
        next_sqn(SQN_MAX)
    with pytest.raises(ValueError):
        sqn_join(0, 32)
    with pytest.raises(ValueError):
        SqnState(seq_ms=(0,) * 3)


def test_sqn_after_resync_keeps_he_when_ahead() -> None:
    he = sqn_join(50, 2)
    assert sqn_after_resync(he, sqn_join(20, 9)) == he
    assert sqn_after_resync(he, sqn_join(60, 9)) == sqn_join(60, 9)
    assert sqn_after_resync(sqn_join(DELTA + 10, 0), sqn_join(1, 0)) == sqn_join(1, 0)


def test_input_lengths() -> None:
    with pytest.raises(ValueError):
        generate_av(K, OPC, 1, b"\x00", RAND)
    with pytest.raises(ValueError):
        generate_av(K, OPC, 1, AMF, RAND[:15])
    with pytest.raises(ValueError):
        verify_autn(K, OPC, RAND, bytes(15), SqnState())


def test_usim_repr_redacted() -> None:
    assert K.hex() not in repr(Usim(K, OPC))


@settings(max_examples=60, deadline=None)
@given(
    k=st.binary(min_size=16, max_size=16),
    opc=st.binary(min_size=16, max_size=16),
    rand=st.binary(min_size=16, max_size=16),
    amf=st.binary(min_size=2, max_size=2),
    seq_ms=st.integers(0, (1 << 43) - 2),
    step=st.integers(1, 1 << 20),
    ind=st.integers(0, 31),
)
def test_roundtrip_random(
    k: bytes, opc: bytes, rand: bytes, amf: bytes, seq_ms: int, step: int, ind: int
) -> None:
    sqn_ms = sqn_join(seq_ms, 0)
    state = SqnState().accept(sqn_ms)
    seq = seq_ms + step
    if seq >= 1 << 43:
        seq = seq_ms + 1
    sqn = sqn_join(seq, ind)
    av: AuthVector = generate_av(k, opc, sqn, amf, rand)
    res = verify_autn(k, opc, rand, av.autn, state)
    assert (res.res, res.ck, res.ik, res.sqn) == (av.xres, av.ck, av.ik, sqn)
    new_state = state.accept(res.sqn)
    # replaying the same AUTN fails with AUTS that the HSS turns back into SQN_MS
    with pytest.raises(SyncFailureError) as ei:
        verify_autn(k, opc, rand, av.autn, new_state)
    assert resync(k, opc, rand, ei.value.auts) == new_state.sqn_ms == sqn
    # a flipped bit anywhere in AUTN is a MAC failure, never accepted
    bad = bytearray(av.autn)
    bad[step % 16] ^= 1 << (ind % 8)
    with pytest.raises(AkaMacError):
        verify_autn(k, opc, rand, bytes(bad), state)
