"""Golden messages of our MBMS profiles (tests/vectors/mbms_profiles.txt), checked both ways:
rebuilt byte for byte from the file's inputs, and parsed / verified / decrypted."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbmsec.crypto import aes_cm
from mbmsec.mbms.compact import (
    ErrorCause,
    KeyErrorReply,
    build_key_error,
    build_key_request,
    build_key_response,
    check_key_response,
    parse_key_request,
    verify_key_request,
)
from mbmsec.mbms.keys import KeyRef, MskId, MskRef, MukId
from mbmsec.mbms.messages import (
    MskKey,
    MskMessage,
    MtkKey,
    build_msk_message,
    build_msk_verification,
    build_mtk_message,
    check_msk_message,
    check_msk_verification,
    check_mtk_message,
)
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import TsType
from mbmsec.mikey.payloads import Kemac, Timestamp
from mbmsec.mikey.prf import derive_transport_keys, kemac_iv

VECTORS = Path(__file__).parent.parent / "vectors" / "mbms_profiles.txt"
MRK = bytes(range(32))
MUK = bytes(range(32, 64))
BTID = "AAECAwQFBgcICQoLDA0ODw==@bsf.home1.net"
MUK_ID = MukId.of("bmsc.home1.net", BTID)
KD = bytes.fromhex("62f210")
MSK1 = bytes(range(0x10, 0x20))
MSK2 = bytes(range(0x20, 0x30))
REF1, REF2 = MskRef(KD, MskId(1, 1)), MskRef(KD, MskId(1, 2))


def _load() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    name = ""
    for line in VECTORS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            name = line.strip("[]")
            out[name] = b""
        elif line:
            out[name] += bytes.fromhex(line)
    return out


V = _load()


def _request() -> tuple[bytes, object]:
    it = iter([bytes.fromhex("11223344"), bytes(range(0xA0, 0xB0))])
    return build_key_request(
        btid=BTID,
        key_ref=KeyRef(service_id="urn:svc:news"),
        mrk=MRK,
        now=1_700_000_000.0,
        rng=lambda n: next(it),
    )


def test_file_has_every_message() -> None:
    assert set(V) == {
        "KEY_REQUEST",
        "KEY_RESPONSE",
        "KEY_ERROR_AUTH",
        "KEY_ERROR_UNAUTH",
        "MSK_PUSH",
        "MSK_VERIFICATION",
        "MTK_MESSAGE",
    }


def test_compact_vectors_rebuild_and_verify() -> None:
    req_bytes, pending = _request()
    assert req_bytes == V["KEY_REQUEST"]
    req = parse_key_request(V["KEY_REQUEST"])
    verify_key_request(req, MRK)
    assert req.key_ref == KeyRef(service_id="urn:svc:news") and req.btid == BTID
    msks = [MskKey(REF1, MSK1, 1, 10), MskKey(REF2, MSK2, 1, 10)]
    assert (
        build_key_response(req, msks, MUK, MUK_ID, rand=bytes(range(0xC0, 0xD0)))
        == V["KEY_RESPONSE"]
    )
    got = check_key_response(V["KEY_RESPONSE"], pending, muk=MUK, mrk=MRK, muk_id=MUK_ID)  # type: ignore[arg-type]
    assert isinstance(got, MskMessage) and [m.key for m in got.msks] == [MSK1, MSK2]
    assert build_key_error(req, ErrorCause.SERVICE_UNKNOWN, MRK) == V["KEY_ERROR_AUTH"]
    assert build_key_error(req, ErrorCause.BTID_UNKNOWN, None) == V["KEY_ERROR_UNAUTH"]
    for name, reply in (("KEY_ERROR_AUTH", (243, True)), ("KEY_ERROR_UNAUTH", (241, False))):
        r = check_key_response(V[name], pending, muk=MUK, mrk=MRK, muk_id=MUK_ID)  # type: ignore[arg-type]
        assert r == KeyErrorReply((reply[0],), reply[1])


def test_response_plaintext_decrypts_independently() -> None:
    data = V["KEY_RESPONSE"]
    msg = decode_message(data)
    kemac = msg.payloads[-1]
    t = msg.find(Timestamp)
    assert isinstance(kemac, Kemac) and t is not None and t.ts_type == TsType.NTP_UTC
    keys = derive_transport_keys(MUK, 0x11223344, bytes(range(0xC0, 0xD0)))
    pt = aes_cm(keys.encr_key, kemac_iv(keys.salt_key, 0x11223344, t.value), kemac.encr_data)
    kv = bytes.fromhex("02000102000a")  # VF len 2, VF = MTK ID 1, VT len 2, VT = 10
    assert pt == bytes.fromhex("14020010") + MSK1 + kv + bytes.fromhex("00020010") + MSK2 + kv


def test_3gpp_vectors_rebuild_and_verify() -> None:
    push = build_msk_message(
        [MskKey(REF1, MSK1, 1, 10)],
        MUK,
        MUK_ID,
        Timestamp(TsType.COUNTER, 1),
        csb_id=0x55667788,
        rand=bytes(range(0xC0, 0xD0)),
        v=True,
    )
    assert push == V["MSK_PUSH"]
    msg = check_msk_message(V["MSK_PUSH"], MUK, expected_muk_id=MUK_ID)
    assert msg.v and msg.timestamp == Timestamp(TsType.COUNTER, 1) and msg.msks[0].key == MSK1
    assert build_msk_verification(msg, MUK, MUK_ID) == V["MSK_VERIFICATION"]
    check_msk_verification(V["MSK_VERIFICATION"], V["MSK_PUSH"], MUK, MUK_ID)
    mtk = MtkKey(REF1, 1, bytes(range(0x30, 0x40)), bytes(range(0x40, 0x4E)))
    assert (
        build_mtk_message(mtk, MSK1, 1, csb_id=0x99AABBCC, rand=bytes(range(0xE0, 0xF0)))
        == V["MTK_MESSAGE"]
    )
    got = check_mtk_message(V["MTK_MESSAGE"], MSK1)
    assert got.mtk == mtk and got.counter == 1


@pytest.mark.parametrize("name", sorted(V))
def test_every_vector_decodes(name: str) -> None:
    assert decode_message(V[name]).raw == V[name]
