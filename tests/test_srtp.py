"""SRTP keyed from the MTK, with MKI = MSK ID || MTK ID (TS 33.246 §6.6.2, RFC 3711).

The wire format is checked against an independent RFC 3711 implementation written here with
``cryptography`` (key derivation §4.3, AES-CM §4.1.1, HMAC-SHA1 tag §4.2), which proves that the
MKI sits between the encrypted portion and the tag and is not authenticated, and that the ROC
enters the tag and the keystream.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.errors import (
    AuthError,
    ConfigError,
    DecodeError,
    MbmsecError,
    ReplayError,
    UnknownMkiError,
)
from mbmsec.srtp import (
    Mki,
    RocMode,
    SrtpKey,
    SrtpProfile,
    SrtpReceiver,
    SrtpSender,
    build_rtp,
    estimate_roc,
)

MTK_A = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de4139")
SALT_A = bytes.fromhex("0ec675ad498afeebb6960b3aabe6")
MTK_B = bytes(range(16))
SALT_B = bytes(range(100, 114))
SSRC = 0xCAFEBABE


def _aes_cm(key: bytes, iv: int, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return enc.update(data) + enc.finalize()


def _derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    # RFC 3711 §4.3.1 with key_derivation_rate 0: x = label || 0^48 XOR master salt
    x = int.from_bytes(master_salt, "big") ^ (label << 48)
    return _aes_cm(master_key, x << 16, bytes(length))


def _reference_srtp(
    master_key: bytes, master_salt: bytes, rtp: bytes, roc: int, mki: bytes
) -> bytes:
    """Independent RFC 3711 AES_CM_128_HMAC_SHA1_80 protect with MKI."""
    k_e = _derive(master_key, master_salt, 0x00, 16)
    k_a = _derive(master_key, master_salt, 0x01, 20)
    k_s = _derive(master_key, master_salt, 0x02, 14)
    seq = int.from_bytes(rtp[2:4], "big")
    ssrc = int.from_bytes(rtp[8:12], "big")
    index = (roc << 16) | seq
    iv = (int.from_bytes(k_s, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
    header, payload = rtp[:12], rtp[12:]
    encrypted = header + _aes_cm(k_e, iv, payload)
    tag = hmac.new(k_a, encrypted + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:10]
    return encrypted + mki + tag


def test_rfc3711_appendix_b3_key_derivation() -> None:
    # RFC 3711 Appendix B.3 test vectors validate the reference used below.
    key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert _derive(key, salt, 0, 16).hex() == "c61e7a93744f39ee10734afe3ff7a087"
    assert _derive(key, salt, 2, 14).hex() == "30cbbc08863d8c85d49db34a9ae1"
    assert _derive(key, salt, 1, 20).hex() == "cebe321f6ff7716b6fd4ab49af256a156d38baa4"


def test_mki_layout_msk_id_then_mtk_id() -> None:
    mki = Mki(msk_id=0x01020304, mtk_id=0x0506)
    assert mki.encode() == bytes.fromhex("010203040506")
    assert Mki.decode(bytes.fromhex("010203040506")) == mki
    with pytest.raises(DecodeError):
        Mki.decode(bytes(5))
    with pytest.raises(DecodeError):
        Mki.decode(bytes(7))
    with pytest.raises(ConfigError):
        Mki(msk_id=1 << 32, mtk_id=0)
    with pytest.raises(ConfigError):
        Mki(msk_id=0, mtk_id=1 << 16)


def test_key_is_never_in_repr() -> None:
    key = SrtpKey(Mki(1, 2), MTK_A, SALT_A)
    assert MTK_A.hex() not in repr(key) and SALT_A.hex() not in repr(key)
    with pytest.raises(ConfigError):
        SrtpKey(Mki(1, 2), bytes(15))
    with pytest.raises(ConfigError):
        SrtpKey(Mki(1, 2), MTK_A, bytes(13))


@pytest.mark.parametrize("roc", [0, 7])
def test_sender_matches_independent_rfc3711(roc: int) -> None:
    mki = Mki(0xAABBCCDD, 3)
    sender = SrtpSender(SSRC)
    sender.set_key(SrtpKey(mki, MTK_A, SALT_A, roc=roc))
    for seq in (1000, 1001, 1002):
        rtp = build_rtp(SSRC, seq, seq * 160, b"payload-%d" % seq)
        out = sender.protect(rtp)
        assert out == _reference_srtp(MTK_A, SALT_A, rtp, roc, mki.encode())
        assert out[-16:-10] == mki.encode()


def test_round_trip_and_key_rotation() -> None:
    sender = SrtpSender(SSRC)
    receiver = SrtpReceiver()
    key_a = SrtpKey(Mki(0x00010001, 1), MTK_A, SALT_A)
    key_b = SrtpKey(Mki(0x00010001, 2), MTK_B, SALT_B)
    receiver.add_key(key_a)
    receiver.add_key(key_b)
    sender.set_key(key_a)
    got = []
    for seq in range(10):
        if seq == 5:
            sender.set_key(key_b)
        pkt = receiver.unprotect(sender.protect(build_rtp(SSRC, seq, seq, b"m%d" % seq)))
        got.append((pkt.mki.mtk_id, pkt.rtp[12:]))
    assert got == [(1 if s < 5 else 2, b"m%d" % s) for s in range(10)]


def test_unknown_mki_names_msk_and_mtk() -> None:
    sender = SrtpSender(SSRC)
    sender.set_key(SrtpKey(Mki(0x0A0B0C0D, 9), MTK_A, SALT_A))
    receiver = SrtpReceiver()
    receiver.add_key(SrtpKey(Mki(0x0A0B0C0D, 8), MTK_A, SALT_A))
    packet = sender.protect(build_rtp(SSRC, 1, 1, b"x"))
    assert receiver.peek_mki(packet) == Mki(0x0A0B0C0D, 9)
    with pytest.raises(UnknownMkiError) as info:
        receiver.unprotect(packet)
    assert (info.value.msk_id, info.value.mtk_id) == (0x0A0B0C0D, 9)
    receiver.remove_msk(0x0A0B0C0D)
    assert receiver.mkis == []


def test_tampering_and_replay_rejected() -> None:
    key = SrtpKey(Mki(5, 1), MTK_A, SALT_A)
    other = SrtpKey(Mki(5, 2), MTK_B, SALT_B)
    sender = SrtpSender(SSRC)
    sender.set_key(key)
    receiver = SrtpReceiver()
    receiver.add_key(key)
    receiver.add_key(other)
    packet = sender.protect(build_rtp(SSRC, 1, 1, b"hello world"))
    flipped = bytearray(packet)
    flipped[14] ^= 1
    with pytest.raises(AuthError):
        receiver.unprotect(bytes(flipped))
    # pointing the MKI at another installed key does not help a forger
    moved = packet[:-16] + other.mki.encode() + packet[-10:]
    with pytest.raises(AuthError):
        receiver.unprotect(moved)
    assert receiver.unprotect(packet).rtp[12:] == b"hello world"
    with pytest.raises(ReplayError):
        receiver.unprotect(packet)


@pytest.mark.parametrize("mode", [RocMode.CONTINUOUS, RocMode.PER_KEY])
def test_roc_across_key_change_and_wrap(mode: RocMode) -> None:
    key_a = SrtpKey(Mki(1, 1), MTK_A, SALT_A)
    key_b = SrtpKey(Mki(1, 2), MTK_B, SALT_B)
    sender = SrtpSender(SSRC, roc_mode=mode)
    sender.set_key(key_a)
    receiver = SrtpReceiver(roc_mode=mode)
    receiver.add_key(key_a)
    receiver.add_key(key_b)
    seqs = [65530 + i for i in range(6)] + list(range(6))
    for i, seq in enumerate(seqs):
        if i == 8:  # change key after the wrap: the new key must start at ROC 1
            sender.set_key(key_b)
        rtp = build_rtp(SSRC, seq, i, b"p%d" % i)
        out = sender.protect(rtp)
        roc = 1 if i >= 6 else 0
        if mode is RocMode.PER_KEY and i >= 8:
            roc = 0  # a new MTK restarts the index
        ref_key = key_b if i >= 8 else key_a
        assert out == _reference_srtp(
            ref_key.master_key, ref_key.master_salt or b"", rtp, roc, ref_key.mki.encode()
        )
        assert receiver.unprotect(out).rtp == rtp
    assert sender.roc == (1 if mode is RocMode.CONTINUOUS else 0)


def test_late_joiner_needs_roc_from_key_message() -> None:
    sender = SrtpSender(SSRC)
    sender.set_key(SrtpKey(Mki(2, 1), MTK_A, SALT_A, roc=3))
    packet = sender.protect(build_rtp(SSRC, 17, 0, b"late"))
    wrong = SrtpReceiver()
    wrong.add_key(SrtpKey(Mki(2, 1), MTK_A, SALT_A, roc=0))
    with pytest.raises(AuthError):
        wrong.unprotect(packet)
    right = SrtpReceiver()
    right.add_key(SrtpKey(Mki(2, 1), MTK_A, SALT_A, roc=3))
    assert right.unprotect(packet).rtp[12:] == b"late"


def test_profile_sha1_32_and_missing_salt() -> None:
    key = SrtpKey(Mki(9, 9), MTK_A, None)
    sender = SrtpSender(SSRC, SrtpProfile.AES128_CM_HMAC_SHA1_32)
    sender.set_key(key)
    receiver = SrtpReceiver(SrtpProfile.AES128_CM_HMAC_SHA1_32)
    receiver.add_key(key)
    out = sender.protect(build_rtp(SSRC, 4, 4, b"short tag"))
    assert out[-10:-4] == key.mki.encode()
    assert receiver.unprotect(out).rtp[12:] == b"short tag"


def test_rtcp_round_trip() -> None:
    key = SrtpKey(Mki(3, 4), MTK_A, SALT_A)
    sender = SrtpSender(SSRC)
    sender.set_key(key)
    receiver = SrtpReceiver()
    receiver.add_key(key)
    rtcp = bytes.fromhex("80c80006") + SSRC.to_bytes(4, "big") + bytes(20)
    out = sender.protect_rtcp(rtcp)
    assert out[-16:-10] == key.mki.encode()
    assert receiver.unprotect_rtcp(out) == (key.mki, rtcp)


def test_receiver_key_limit_evicts_oldest() -> None:
    receiver = SrtpReceiver(max_keys=2)
    for mtk_id in (1, 2, 3):
        receiver.add_key(SrtpKey(Mki(1, mtk_id), MTK_A, SALT_A))
    assert receiver.mkis == [Mki(1, 2), Mki(1, 3)]
    assert not receiver.has_key(Mki(1, 1))


def test_sender_misuse() -> None:
    sender = SrtpSender(SSRC)
    with pytest.raises(ConfigError):
        sender.protect(build_rtp(SSRC, 1, 1, b""))
    sender.set_key(SrtpKey(Mki(1, 1), MTK_A, SALT_A))
    with pytest.raises(ConfigError):
        sender.protect(build_rtp(SSRC + 1, 1, 1, b""))


def test_estimate_roc_rfc3711_appendix_a() -> None:
    assert estimate_roc(5, 100, 200) == 5
    assert estimate_roc(5, 100, 65000) == 4
    assert estimate_roc(5, 65000, 10) == 6
    assert estimate_roc(5, 65000, 64000) == 5


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_unprotect_any_input_raises_only_mbmsec_errors(data: bytes) -> None:
    receiver = SrtpReceiver()
    receiver.add_key(SrtpKey(Mki(1, 1), MTK_A, SALT_A))
    for fn in (receiver.unprotect, receiver.unprotect_rtcp):
        with contextlib.suppress(MbmsecError):
            fn(data)
