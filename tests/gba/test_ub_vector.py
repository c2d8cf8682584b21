"""The worked Ub example of docs/gba.md §2.6 (Milenage test set 1), line by line."""

from __future__ import annotations

from datetime import UTC, datetime

from mbmsec.gba.aka import generate_av
from mbmsec.gba.bsf import bootstrapping_info_xml
from mbmsec.gba.digest import (
    DigestChallenge,
    build_authentication_info,
    build_authorization,
    build_www_authenticate,
    encode_aka_nonce,
    make_authentication_info,
    respond,
)
from mbmsec.gba.kdf import UA_MBMS, btid, ks_naf, naf_id

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
IMPI = "user1_private@home1.net"
REALM = "bsf.home1.net"


def test_worked_example() -> None:
    av = generate_av(K, OPC, 0xFF9BB4D0B607, bytes.fromhex("b9b9"), RAND)
    assert av.autn.hex() == "55f328b43577b9b94a9ffac354dfafb3"
    assert av.xres.hex() == "a54211d5e3ba50bf"
    nonce = encode_aka_nonce(RAND, av.autn)
    assert nonce == "I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M="
    ch = DigestChallenge(realm=REALM, nonce=nonce, algorithm="AKAv1-MD5", qop=("auth-int",))
    assert build_www_authenticate(ch) == (
        f'Digest realm="{REALM}", nonce="{nonce}", algorithm=AKAv1-MD5, qop="auth-int"'
    )
    creds = respond(ch, username=IMPI, password=av.xres, method="GET", uri="/", cnonce="0a4f113b")
    assert creds.response == "d47e4afd3245638428c815924bc5bc69"
    assert build_authorization(creds) == (
        f'Digest username="{IMPI}", realm="{REALM}", nonce="{nonce}", uri="/", '
        'response="d47e4afd3245638428c815924bc5bc69", algorithm=AKAv1-MD5, cnonce="0a4f113b", '
        "qop=auth-int, nc=00000001"
    )
    b = btid(RAND, REALM)
    assert b == "I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net"
    created = datetime(2004, 1, 8, 10, 13, 17, tzinfo=UTC).timestamp()
    body = bootstrapping_info_xml(b, created + 86400)
    assert len(body) == 199 and b"<lifetime>2004-01-09T10:13:17Z</lifetime>" in body
    info = make_authentication_info(creds, password=av.xres, entity_body=body)
    assert build_authentication_info(info) == (
        'qop=auth-int, rspauth="d31ec9a6e277314229e20af5d98a6b50", cnonce="0a4f113b", nc=00000001'
    )
    assert (av.ck + av.ik).hex() == (
        "b40ba9a3c58b2a05bbf0d987b21bf8cbf769bcd751044604127672711c6d3441"
    )
    assert ks_naf(av.ck + av.ik, RAND, IMPI, naf_id("bmsc.home1.net", UA_MBMS)).hex() == (
        "9e7f591d867c2c51bcf388beffa209771eed795d08db4a470895468faff293cb"
    )
