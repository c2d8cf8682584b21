"""An independent MBMS UE written only from docs/protocol.md, docs/gba.md and the public specs.

Nothing here comes from ``mbmsec``: the MIKEY codec (RFC 3830, RFC 4563), the MIKEY-1 PRF
(RFC 3830 §4.1.2), AES-CM (RFC 3830 §4.2.3), the GBA KDF (TS 33.220 Annex B), Milenage
(TS 35.206), the Ub Digest AKA client (RFC 3310, TS 24.109) and the NAF HTTP digest client
(RFC 2617, TS 24.109 §5) are written again from the documents, with only the Python standard
library and ``cryptography`` (AES block, AES-CTR). It exists to prove the protocol document
is enough for another team, and to cross-check the BM-SC against a second implementation.

Profiles:

* compact: :meth:`CompactUe.build_request` / :meth:`CompactUe.take_answer`;
* 3GPP: :func:`keymanagement` (HTTP register / msk-request with digest),
  :meth:`PushReceiver.take_push` (MSK message, COUNTER rule) and
  :func:`build_verification` (MIKEY verification message);
* both: :class:`MtkReceiver` (MGV-F checks of MTK messages).

Run ``python tests/interop/independent_ue.py --help`` for a stand-alone compact-profile UE.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import os
import re
import select
import socket
import struct
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

Rng = Callable[[int], bytes]


class ProtocolError(Exception):
    """A message that fails a check of the documents: the UE drops it."""


# ---------------------------------------------------------------------------------------------
# Milenage (TS 35.206 §4.1), f1..f5, f1*, f5*


def _aes_block(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, bits: int) -> bytes:
    v = int.from_bytes(x, "big")
    bits %= 128
    v = ((v << bits) | (v >> (128 - bits))) & ((1 << 128) - 1)
    return v.to_bytes(16, "big")


@dataclass(frozen=True)
class MilenageOut:
    """Outputs of one Milenage run."""

    mac_a: bytes
    mac_s: bytes
    res: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    ak: bytes
    ak_star: bytes


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> MilenageOut:
    """TS 35.206 §4.1 with r1..r5 = 64, 0, 32, 64, 96 and c1..c5 = 0, 1, 2, 4, 8."""
    temp = _aes_block(k, _xor(rand, opc))
    in1 = sqn + amf + sqn + amf
    out1 = _xor(_aes_block(k, _xor(_xor(temp, _rot(_xor(in1, opc), 64)), bytes(16))), opc)

    def out(r: int, c: int) -> bytes:
        cc = c.to_bytes(16, "big")
        return _xor(_aes_block(k, _xor(_rot(_xor(temp, opc), r), cc)), opc)

    out2, out3, out4, out5 = out(0, 1), out(32, 2), out(64, 4), out(96, 8)
    return MilenageOut(
        mac_a=out1[:8],
        mac_s=out1[8:],
        res=out2[8:],
        ck=out3,
        ik=out4,
        ak=out2[:6],
        ak_star=out5[:6],
    )


# ---------------------------------------------------------------------------------------------
# GBA: TS 33.220 Annex B KDF, NAF_Id (Annex H.3)

UA_MBMS = bytes([0x01, 0x00, 0x00, 0x00, 0x01])


def gba_kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """TS 33.220 Annex B.2: HMAC-SHA-256(Key, FC || P0 || L0 || P1 || L1 || ...)."""
    s = bytes([fc]) + b"".join(p + len(p).to_bytes(2, "big") for p in params)
    return hmac.new(key, s, hashlib.sha256).digest()


def ks_naf(ks: bytes, rand: bytes, impi: str, naf_fqdn: str) -> bytes:
    """Ks_(ext)_NAF = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id), FC 0x01 (TS 33.220 Annex B)."""
    naf_id = naf_fqdn.encode() + UA_MBMS
    return gba_kdf(ks, 0x01, b"gba-me", rand, impi.encode(), naf_id)


# ---------------------------------------------------------------------------------------------
# HTTP digest (RFC 2617) helpers shared by Ub and the BM-SC's HTTP interface

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?')


def parse_digest(header: str) -> dict[str, str]:
    """Parameters of a ``Digest k=v, k="v"`` header (RFC 2617 §3.2.1)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ProtocolError(f"not a Digest challenge: {scheme!r}")
    out: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise ProtocolError("malformed Digest parameters")
        value = m.group(3) if m.group(3) is not None else m.group(2)
        out[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return out


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def digest_response(
    *,
    username: str,
    realm: str,
    password: bytes,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str,
    body: bytes,
) -> str:
    """RFC 2617 §3.2.2.1 request-digest with qop auth or auth-int (MD5)."""
    ha1 = _md5(username.encode() + b":" + realm.encode() + b":" + password)
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + _md5(body)
    ha2 = _md5(a2.encode())
    return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


# ---------------------------------------------------------------------------------------------
# Ub: bootstrap (TS 33.220 §4.5.2, TS 24.109 §4 / Annex A, RFC 3310) as in docs/gba.md §2


@dataclass(frozen=True)
class Bootstrap:
    """Result of a GBA_ME bootstrap."""

    impi: str
    btid: str
    rand: bytes
    lifetime: str
    ks: bytes = field(repr=False)

    def naf_key(self, naf_fqdn: str) -> bytes:
        """Ks_NAF for a NAF FQDN with the MBMS Ua protocol id."""
        return ks_naf(self.ks, self.rand, self.impi, naf_fqdn)


def _split_url(url: str) -> tuple[str, int, str]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or u.hostname is None:
        raise ValueError(f"need an http:// URL: {url!r}")
    return u.hostname, u.port or 80, u.path or "/"


def bootstrap(
    bsf_url: str, impi: str, k: bytes, opc: bytes, realm: str, rng: Rng = os.urandom
) -> Bootstrap:
    """Run Ub against the BSF at ``bsf_url``; raise ProtocolError on any failure."""
    host, port, _ = _split_url(bsf_url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        first = f'Digest username="{impi}", realm="{realm}", nonce="", uri="/", response=""'
        conn.request("GET", "/", headers={"Authorization": first})
        r1 = conn.getresponse()
        r1.read()
        if r1.status != 401:
            raise ProtocolError(f"BSF answered {r1.status} to request 1")
        ch = parse_digest(r1.getheader("WWW-Authenticate", ""))
        if ch.get("realm") != realm or ch.get("algorithm", "").lower() != "akav1-md5":
            raise ProtocolError("unexpected realm or algorithm in the BSF challenge")
        raw = base64.b64decode(ch["nonce"])
        rand, autn = raw[:16], raw[16:32]
        sqn_ak, amf, mac = autn[:6], autn[6:8], autn[8:16]
        ak = milenage(k, opc, rand, bytes(6), amf).ak  # f5 does not depend on SQN
        sqn = _xor(sqn_ak, ak)
        m = milenage(k, opc, rand, sqn, amf)
        if not hmac.compare_digest(m.mac_a, mac):
            raise ProtocolError("AUTN MAC-A failure (network not authenticated)")
        qop = "auth-int"
        cnonce, nc = rng(8).hex(), "00000001"
        resp = digest_response(
            username=impi,
            realm=realm,
            password=m.res,
            method="GET",
            uri="/",
            nonce=ch["nonce"],
            nc=nc,
            cnonce=cnonce,
            qop=qop,
            body=b"",
        )
        opaque = f', opaque="{ch["opaque"]}"' if "opaque" in ch else ""
        auth = (
            f'Digest username="{impi}", realm="{realm}", nonce="{ch["nonce"]}", uri="/", '
            f'response="{resp}", algorithm=AKAv1-MD5, cnonce="{cnonce}", qop={qop}, '
            f"nc={nc}{opaque}"
        )
        conn.request("GET", "/", headers={"Authorization": auth})
        r2 = conn.getresponse()
        body = r2.read()
        if r2.status != 200:
            raise ProtocolError(f"BSF answered {r2.status} to request 2")
        info = parse_digest("Digest " + r2.getheader("Authentication-Info", ""))
        ha1 = _md5(impi.encode() + b":" + realm.encode() + b":" + m.res)
        ha2 = _md5(f":/:{_md5(body)}".encode())
        want = _md5(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:{qop}:{ha2}".encode())
        if not hmac.compare_digest(info.get("rspauth", ""), want):
            raise ProtocolError("rspauth of the BSF is wrong")
        root = ElementTree.fromstring(body)
        ns = root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""
        btid = root.findtext(f"{ns}btid")
        lifetime = root.findtext(f"{ns}lifetime") or ""
        if not btid:
            raise ProtocolError("no btid in the BSF answer")
        return Bootstrap(impi=impi, btid=btid, rand=rand, lifetime=lifetime, ks=m.ck + m.ik)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# MIKEY: PRF (RFC 3830 §4.1.2), transport keys (§4.1.4), AES-CM (§4.2.3)


def _p_sha1(s: bytes, label: bytes, m: int) -> bytes:
    out, a = b"", label
    for _ in range(m):
        a = hmac.new(s, a, hashlib.sha1).digest()
        out += hmac.new(s, a + label, hashlib.sha1).digest()
    return out


def mikey_prf(inkey: bytes, label: bytes, outkey_len: int) -> bytes:
    """RFC 3830 §4.1.2: XOR of P_SHA1 over 256-bit chunks of inkey, truncated."""
    m = -(-outkey_len * 8 // 160)
    acc = bytes(20 * m)
    for i in range(0, max(len(inkey), 1), 32):
        acc = _xor(acc, _p_sha1(inkey[i : i + 32], label, m))
    return acc[:outkey_len]


ENCR_CONST, AUTH_CONST, SALT_CONST = 0x150533E1, 0x2D22AC75, 0x29B88916


@dataclass(frozen=True)
class TransportKeys:
    """encr_key / auth_key / salt_key of RFC 3830 §4.1.4 for one (PSK, CSB ID, RAND)."""

    encr: bytes = field(repr=False)
    auth: bytes = field(repr=False)
    salt: bytes = field(repr=False)


def transport_keys(psk: bytes, csb_id: int, rand: bytes) -> TransportKeys:
    """RFC 3830 §4.1.4: label = constant || 0xFF || CSB ID || RAND."""

    def label(c: int) -> bytes:
        return c.to_bytes(4, "big") + b"\xff" + csb_id.to_bytes(4, "big") + rand

    return TransportKeys(
        encr=mikey_prf(psk, label(ENCR_CONST), 16),
        auth=mikey_prf(psk, label(AUTH_CONST), 20),
        salt=mikey_prf(psk, label(SALT_CONST), 14),
    )


def aes_cm(tk: TransportKeys, csb_id: int, t64: int, data: bytes) -> bytes:
    """RFC 3830 §4.2.3: IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000, then AES-CTR."""
    x = bytes(2) + csb_id.to_bytes(4, "big") + t64.to_bytes(8, "big")
    iv = _xor(tk.salt, x) + bytes(2)
    enc = Cipher(algorithms.AES(tk.encr), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def hmac_sha1(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-1-160 (RFC 3830 §4.2.4)."""
    return hmac.new(key, data, hashlib.sha1).digest()


# ---------------------------------------------------------------------------------------------
# MIKEY codec (RFC 3830 §6, RFC 4563 §4): only what the two profiles use

PT_LAST, PT_KEMAC, PT_T, PT_ID, PT_V, PT_SP = 0, 1, 5, 6, 9, 10
PT_RAND, PT_ERR, PT_KEYDATA, PT_EXT = 11, 12, 20, 21
DT_PSK_INIT, DT_PSK_RESP, DT_ERROR, DT_KEY_REQUEST = 0, 1, 6, 241
TS_NTP_UTC, TS_NTP, TS_COUNTER = 0, 1, 2
ID_NAI, ID_URI = 0, 1
EXT_KEY_ID = 3
KID_DOMAIN, KID_MSK, KID_MTK, KID_SERVICE = 0, 1, 2, 241
MAP_EMPTY = 1


@dataclass(frozen=True)
class Payload:
    """One parsed payload; ``fields`` depends on the type; ``start`` is its offset."""

    ptype: int
    start: int
    end: int
    fields: dict[str, object]


@dataclass(frozen=True)
class Mikey:
    """A parsed MIKEY message with the empty CS ID map."""

    raw: bytes
    data_type: int
    v_flag: bool
    prf: int
    csb_id: int
    payloads: list[Payload]

    def all(self, ptype: int) -> list[Payload]:
        """Every payload of a type, in message order."""
        return [p for p in self.payloads if p.ptype == ptype]

    def one(self, ptype: int) -> Payload:
        """The single payload of a type; ProtocolError if absent or repeated."""
        found = self.all(ptype)
        if len(found) != 1:
            raise ProtocolError(f"payload {ptype}: {len(found)} present, want 1")
        return found[0]


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ProtocolError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")


def parse_key_ids(info: bytes) -> list[tuple[int, bytes]]:
    """RFC 4563 Figure 2: Key ID Type (8) | Key ID Length (8) | Key ID, repeated."""
    r, out = _Reader(info), []
    while r.pos < r.end:
        kid_type, n = r.u8(), r.u8()
        out.append((kid_type, r.take(n)))
    return out


def parse_mikey(data: bytes) -> Mikey:  # RFC 3830 §6
    """Parse HDR (§6.1) and walk the next-payload chain; raise ProtocolError on junk."""
    r = _Reader(data)
    version, data_type, nxt, vp = r.u8(), r.u8(), r.u8(), r.u8()
    csb_id, ncs, map_type = r.u32(), r.u8(), r.u8()
    if version != 1 or ncs != 0 or map_type != MAP_EMPTY:
        raise ProtocolError("HDR: want version 1, #CS 0, empty map")
    payloads: list[Payload] = []
    while nxt != PT_LAST:
        start, ptype = r.pos, nxt
        nxt = r.u8()
        f: dict[str, object] = {}
        if ptype == PT_T:  # §6.6
            f["ts_type"] = ts = r.u8()
            if ts in (TS_NTP_UTC, TS_NTP):
                f["value"] = r.take(8)
            elif ts == TS_COUNTER:
                f["value"] = r.take(4)
            else:
                raise ProtocolError("T: unknown TS type")
        elif ptype == PT_RAND:  # §6.11
            f["rand"] = r.take(r.u8())
        elif ptype == PT_ID:  # §6.7
            f["id_type"] = r.u8()
            f["id"] = r.take(r.u16())
        elif ptype == PT_EXT:  # §6.15, RFC 4563 §4
            f["type"] = r.u8()
            f["data"] = r.take(r.u16())
        elif ptype == PT_KEMAC:  # §6.2
            f["encr_alg"] = r.u8()
            f["encr_data"] = r.take(r.u16())
            f["mac_alg"] = mac_alg = r.u8()
            f["mac_end"] = r.pos
            f["mac"] = r.take(20 if mac_alg == 1 else 0)
        elif ptype == PT_V:  # §6.9
            f["auth_alg"] = alg = r.u8()
            f["mac_end"] = r.pos
            f["mac"] = r.take(20 if alg == 1 else 0)
        elif ptype == PT_ERR:  # §6.12
            f["err_no"] = r.u8()
            r.take(2)
        else:
            raise ProtocolError(f"payload type {ptype} not used by the profiles")
        payloads.append(Payload(ptype, start, r.pos, f))
        if ptype in (PT_KEMAC, PT_V) and nxt != PT_LAST:
            raise ProtocolError("KEMAC/V must be the last payload")
    if r.pos != len(data):
        raise ProtocolError("bytes after the last payload")
    return Mikey(data, data_type, bool(vp & 0x80), vp & 0x7F, csb_id, payloads)


@dataclass(frozen=True)
class KeyData:
    """A Key data sub-payload (RFC 3830 §6.13) with its KV data (§6.14)."""

    key_type: int
    kv: int
    key: bytes = field(repr=False)
    salt: bytes | None = field(repr=False)
    spi: bytes | None = None
    valid_from: bytes | None = None
    valid_to: bytes | None = None


def parse_key_data(plain: bytes) -> list[KeyData]:  # RFC 3830 §6.13, §6.14
    """The chain of Key data sub-payloads in a decrypted KEMAC."""
    r, out, nxt = _Reader(plain), [], PT_KEYDATA
    while nxt == PT_KEYDATA:
        nxt = r.u8()
        tkv = r.u8()
        key_type, kv = tkv >> 4, tkv & 0x0F
        key = r.take(r.u16())
        salt = r.take(r.u16()) if key_type in (1, 3) else None
        spi = vf = vt = None
        if kv == 1:
            spi = r.take(r.u8())
        elif kv == 2:
            vf = r.take(r.u8())
            vt = r.take(r.u8())
        elif kv != 0:
            raise ProtocolError("unknown KV type")
        out.append(KeyData(key_type, kv, key, salt, spi, vf, vt))
    if nxt != PT_LAST or r.pos != len(plain):
        raise ProtocolError("key data chain malformed")
    return out


def _hdr(data_type: int, first: int, csb_id: int, v: bool = False) -> bytes:  # RFC 3830 §6.1
    return bytes([1, data_type, first, 0x80 if v else 0]) + struct.pack(">IBB", csb_id, 0, 1)


def ntp_now(now: float) -> int:
    """64-bit NTP timestamp (RFC 5905 §6) of a POSIX time."""
    secs = now + 2_208_988_800
    return (int(secs) << 32) | int((secs % 1) * (1 << 32))


# ---------------------------------------------------------------------------------------------
# Key IDs (protocol.md §2)


def key_domain_id(mcc: str, mnc: str) -> bytes:
    """PLMN identity BCD (TS 24.008 §10.5.1.3): MCC2|MCC1, MNC3|MCC3, MNC2|MNC1."""
    m3 = int(mnc[2]) if len(mnc) == 3 else 0xF
    return bytes(
        [
            int(mcc[1]) << 4 | int(mcc[0]),
            m3 << 4 | int(mcc[2]),
            int(mnc[1]) << 4 | int(mnc[0]),
        ]
    )


def _ext_key_id(subs: list[tuple[int, bytes]], nxt: int) -> bytes:  # RFC 4563 §4
    info = b"".join(bytes([t, len(v)]) + v for t, v in subs)
    return bytes([nxt, EXT_KEY_ID]) + len(info).to_bytes(2, "big") + info


@dataclass(frozen=True)
class Msk:
    """An MSK as the UE holds it: key, IDs, MTK ID validity and MGV-F state."""

    key_domain: bytes
    msk_id: int
    key: bytes = field(repr=False)
    mtk_first: int
    mtk_last: int


def _key_ids(msg: Mikey) -> list[tuple[int, bytes]]:
    ext = msg.one(PT_EXT)
    if ext.fields["type"] != EXT_KEY_ID:
        raise ProtocolError("EXT is not a Key ID extension")
    data = ext.fields["data"]
    assert isinstance(data, bytes)
    return parse_key_ids(data)


def _verify_kemac(msg: Mikey, psk: bytes) -> tuple[TransportKeys, list[KeyData]]:
    """MAC over HDR..MAC alg byte (RFC 3830 §5.2), verified before decrypting."""
    kemac = msg.one(PT_KEMAC)
    if kemac.fields["encr_alg"] != 1 or kemac.fields["mac_alg"] != 1:
        raise ProtocolError("KEMAC: want AES-CM-128 and HMAC-SHA-1-160")
    rand = msg.one(PT_RAND).fields["rand"]
    assert isinstance(rand, bytes)
    tk = transport_keys(psk, msg.csb_id, rand)
    mac_end = kemac.fields["mac_end"]
    assert isinstance(mac_end, int)
    if not hmac.compare_digest(hmac_sha1(tk.auth, msg.raw[:mac_end]), kemac.fields["mac"]):
        raise ProtocolError("KEMAC MAC mismatch")
    t_value = msg.one(PT_T).fields["value"]
    assert isinstance(t_value, bytes)
    encr = kemac.fields["encr_data"]
    assert isinstance(encr, bytes)
    plain = aes_cm(tk, msg.csb_id, int.from_bytes(t_value, "big"), encr)
    return tk, parse_key_data(plain)


def check_msk_message(
    data: bytes, *, muk: bytes, bmsc_fqdn: str, btid: str
) -> tuple[Mikey, list[Msk]]:
    """protocol.md §5 receiver checks (replay rule left to the caller)."""
    msg = parse_mikey(data)
    if msg.data_type != DT_PSK_INIT or msg.prf != 0:
        raise ProtocolError("not a PSK init message")
    for pt in (PT_EXT, PT_T, PT_RAND):
        msg.one(pt)
    ids = msg.all(PT_ID)
    want = [(ID_URI, bmsc_fqdn.encode()), (ID_NAI, btid.encode())]
    if [(p.fields["id_type"], p.fields["id"]) for p in ids] != want:
        raise ProtocolError("IDi/IDr are not (BM-SC FQDN, B-TID)")
    _, keys = _verify_kemac(msg, muk)
    kids = _key_ids(msg)
    domains = [v for t, v in kids if t == KID_DOMAIN]
    msk_ids = [v for t, v in kids if t == KID_MSK]
    if len(domains) != 1 or len(domains[0]) != 3 or len(msk_ids) != len(keys):
        raise ProtocolError("Key IDs do not match the key data")
    if any(t not in (KID_DOMAIN, KID_MSK) for t, _ in kids):
        raise ProtocolError("unexpected Key ID type in an MSK message")
    out = []
    for mid, kd in zip(msk_ids, keys, strict=True):
        if kd.key_type != 0 or kd.kv != 2 or len(kd.key) != 16 or len(mid) != 4:
            raise ProtocolError("MSK key data is not TGK/Interval with a 16-byte key")
        if kd.valid_from is None or kd.valid_to is None:
            raise ProtocolError("no validity")
        if len(kd.valid_from) != 2 or len(kd.valid_to) != 2:
            raise ProtocolError("VF/VT must be 2-byte MTK IDs")
        first, last = int.from_bytes(kd.valid_from, "big"), int.from_bytes(kd.valid_to, "big")
        if first > last:
            raise ProtocolError("first MTK ID > last")
        out.append(Msk(domains[0], int.from_bytes(mid, "big"), kd.key, first, last))
    return msg, out


def is_mtk_message(data: bytes) -> bool:
    """True for an MTK message (its Key ID names an MTK ID). Unicast fan-out copies of MTK
    messages arrive on the same UDP port as MSK pushes / compact answers."""
    try:
        msg = parse_mikey(data)
        return msg.data_type == DT_PSK_INIT and any(t == KID_MTK for t, _ in _key_ids(msg))
    except ProtocolError:
        return False


# ---------------------------------------------------------------------------------------------
# Compact profile (protocol.md §8)


@dataclass(frozen=True)
class Outstanding:
    """A compact key request the UE waits an answer for."""

    csb_id: int
    t: bytes
    rand: bytes
    auth_key: bytes = field(repr=False)
    raw: bytes


@dataclass(frozen=True)
class ErrorAnswer:
    """A MIKEY Error message that passed the checks."""

    err_no: int
    authenticated: bool


@dataclass
class CompactUe:
    """Compact-profile key client state: MRK/MUK of one B-TID and its outstanding requests."""

    btid: str
    bmsc_fqdn: str
    mrk: bytes = field(repr=False)
    muk: bytes = field(repr=False)
    rng: Rng = os.urandom
    outstanding: dict[int, Outstanding] = field(default_factory=dict)

    def build_request(
        self,
        now: float,
        *,
        service_id: str | None = None,
        key_domain: bytes | None = None,
        msk_id: int | None = None,
    ) -> Outstanding:
        """protocol.md §8.1: HDR(241) T RAND IDi EXT V."""
        csb_id = int.from_bytes(self.rng(4), "big")
        rand = self.rng(16)
        t = ntp_now(now).to_bytes(8, "big")
        subs: list[tuple[int, bytes]] = []
        if msk_id is not None:
            assert key_domain is not None
            subs += [(KID_DOMAIN, key_domain), (KID_MSK, msk_id.to_bytes(4, "big"))]
        if service_id is not None:
            subs.append((KID_SERVICE, service_id.encode()))
        btid = self.btid.encode()
        body = (
            _hdr(DT_KEY_REQUEST, PT_T, csb_id)
            + bytes([PT_RAND, TS_NTP_UTC])
            + t
            + bytes([PT_ID, 16])
            + rand
            + bytes([PT_EXT, ID_NAI])
            + len(btid).to_bytes(2, "big")
            + btid
            + _ext_key_id(subs, PT_V)
            + bytes([PT_LAST, 1])
        )
        auth_key = transport_keys(self.mrk, csb_id, rand).auth
        raw = body + hmac_sha1(auth_key, body)
        req = Outstanding(csb_id, t, rand, auth_key, raw)
        self.outstanding[csb_id] = req
        return req

    def take_answer(self, data: bytes) -> list[Msk] | ErrorAnswer:
        """protocol.md §8.3/§8.4: match CSB ID and T, verify, forget the request."""
        msg = parse_mikey(data)
        req = self.outstanding.get(msg.csb_id)
        if req is None:
            raise ProtocolError("no outstanding request with this CSB ID")
        t = msg.one(PT_T)
        if t.fields["ts_type"] != TS_NTP_UTC or t.fields["value"] != req.t:
            raise ProtocolError("T is not the request's T")
        if msg.data_type == DT_ERROR:
            err_no = msg.one(PT_ERR).fields["err_no"]
            assert isinstance(err_no, int)
            vs = msg.all(PT_V)
            if vs:
                v = vs[0]
                mac_end = v.fields["mac_end"]
                assert isinstance(mac_end, int)
                mac = hmac_sha1(req.auth_key, msg.raw[:mac_end])
                if v.fields["auth_alg"] != 1 or not hmac.compare_digest(mac, v.fields["mac"]):
                    raise ProtocolError("Error V MAC mismatch")
            elif err_no not in (241, 242):
                raise ProtocolError("only causes 241/242 may come without V")
            del self.outstanding[msg.csb_id]
            return ErrorAnswer(err_no, bool(vs))
        _, msks = check_msk_message(data, muk=self.muk, bmsc_fqdn=self.bmsc_fqdn, btid=self.btid)
        if msg.v_flag:
            raise ProtocolError("compact answers have V = 0")
        del self.outstanding[msg.csb_id]
        return msks


# ---------------------------------------------------------------------------------------------
# MTK messages and the MGV-F (protocol.md §6)


@dataclass(frozen=True)
class Mtk:
    """An MTK released by the MGV-F."""

    key_domain: bytes
    msk_id: int
    mtk_id: int
    key: bytes = field(repr=False)
    salt: bytes | None = field(repr=False)
    counter: int


@dataclass
class MtkReceiver:
    """MSKs held and their MGV-F state (last COUNTER, current MTK ID)."""

    msks: dict[tuple[bytes, int], Msk] = field(default_factory=dict)
    last_counter: dict[tuple[bytes, int], int] = field(default_factory=dict)
    current_mtk: dict[tuple[bytes, int], int] = field(default_factory=dict)

    def install(self, msk: Msk) -> None:
        """Hold an MSK (state starts at COUNTER 0, MTK ID 0)."""
        ref = (msk.key_domain, msk.msk_id)
        if ref not in self.msks:
            self.msks[ref] = msk
            self.last_counter[ref] = 0
            self.current_mtk[ref] = 0

    def take(self, data: bytes) -> Mtk:
        """MGV-F: ID range, COUNTER, MAC, then decrypt; ProtocolError on any failure."""
        msg = parse_mikey(data)
        if msg.data_type != DT_PSK_INIT or msg.v_flag or msg.all(PT_ID):
            raise ProtocolError("not an MTK message")
        kids = _key_ids(msg)
        if sorted(t for t, _ in kids) != [KID_DOMAIN, KID_MSK, KID_MTK]:
            raise ProtocolError("MTK message Key IDs must be domain, MSK, MTK")
        d = dict(kids)
        ref = (d[KID_DOMAIN], int.from_bytes(d[KID_MSK], "big"))
        msk = self.msks.get(ref)
        if msk is None:
            raise ProtocolError("unknown MSK")
        mtk_id = int.from_bytes(d[KID_MTK], "big")
        if not msk.mtk_first <= mtk_id <= msk.mtk_last or mtk_id <= self.current_mtk[ref]:
            raise ProtocolError("MTK ID outside the MSK validity or not newer")
        t = msg.one(PT_T)
        if t.fields["ts_type"] != TS_COUNTER:
            raise ProtocolError("MTK message T must be a COUNTER")
        value = t.fields["value"]
        assert isinstance(value, bytes)
        counter = int.from_bytes(value, "big")
        if counter <= self.last_counter[ref]:
            raise ProtocolError("COUNTER not greater than the last accepted")
        _, keys = _verify_kemac(msg, msk.key)
        if len(keys) != 1:
            raise ProtocolError("one key data wanted")
        kd = keys[0]
        if kd.key_type not in (2, 3) or kd.kv != 1 or kd.spi != d[KID_MSK] + d[KID_MTK]:
            raise ProtocolError("MTK key data must be TEK(+SALT) with SPI = MSK ID || MTK ID")
        self.last_counter[ref] = counter
        self.current_mtk[ref] = mtk_id
        return Mtk(ref[0], ref[1], mtk_id, kd.key, kd.salt, counter)


# ---------------------------------------------------------------------------------------------
# 3GPP profile: HTTP key management (protocol.md §9), MSK push, verification message (§7)


@dataclass(frozen=True)
class HttpAnswer:
    """Status, headers and body of a key-management answer."""

    status: int
    headers: dict[str, str]
    body: bytes
    rspauth_ok: bool


def keymanagement(
    base_url: str,
    requesttype: str,
    body: bytes,
    content_type: str,
    *,
    btid: str,
    mrk: bytes,
    bmsc_fqdn: str,
    rng: Rng = os.urandom,
    tries: int = 5,
) -> HttpAnswer:
    """POST /keymanagement?requesttype=...; answer the 401 challenge with digest (§9.2)."""
    host, port, _ = _split_url(base_url)
    uri = f"/keymanagement?requesttype={requesttype}"
    password = base64.b64encode(mrk)
    headers = {"Content-Type": content_type}
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        challenge: dict[str, str] | None = None
        nc = 0
        for _ in range(tries):
            h = dict(headers)
            if challenge is not None:
                nc += 1
                qops = [q.strip() for q in challenge.get("qop", "auth").split(",")]
                qop = "auth-int" if "auth-int" in qops else "auth"
                cnonce = rng(8).hex()
                resp = digest_response(
                    username=btid,
                    realm=challenge["realm"],
                    password=password,
                    method="POST",
                    uri=uri,
                    nonce=challenge["nonce"],
                    nc=f"{nc:08x}",
                    cnonce=cnonce,
                    qop=qop,
                    body=body,
                )
                opaque = f', opaque="{challenge["opaque"]}"' if "opaque" in challenge else ""
                h["Authorization"] = (
                    f'Digest username="{btid}", realm="{challenge["realm"]}", '
                    f'nonce="{challenge["nonce"]}", uri="{uri}", response="{resp}", '
                    f'algorithm=MD5, cnonce="{cnonce}", qop={qop}, nc={nc:08x}{opaque}'
                )
            conn.request("POST", uri, body=body, headers=h)
            r = conn.getresponse()
            rbody = r.read()
            rh = {k.lower(): v for k, v in r.getheaders()}
            if r.status == 401:
                challenge = parse_digest(rh.get("www-authenticate", ""))
                if challenge.get("realm") != f"3GPP-bootstrapping@{bmsc_fqdn}":
                    raise ProtocolError(f"unexpected NAF realm {challenge.get('realm')!r}")
                nc = 0
                continue
            if r.status == 503:
                time.sleep(float(rh.get("retry-after", "1")))
                continue
            ok = False
            if r.status == 200 and challenge is not None and "authentication-info" in rh:
                info = parse_digest("Digest " + rh["authentication-info"])
                qop = info.get("qop", "auth")
                ha1 = _md5(btid.encode() + b":" + challenge["realm"].encode() + b":" + password)
                a2 = f":{uri}" + (f":{_md5(rbody)}" if qop == "auth-int" else "")
                want = _md5(
                    f"{ha1}:{challenge['nonce']}:{info.get('nc', '')}:{info.get('cnonce', '')}:"
                    f"{qop}:{_md5(a2.encode())}".encode()
                )
                ok = hmac.compare_digest(info.get("rspauth", ""), want)
            return HttpAnswer(r.status, rh, rbody, ok)
        raise ProtocolError("no final answer from the BM-SC")
    finally:
        conn.close()


def register_body(service_ids: list[str], mikey_port: int) -> bytes:
    """protocol.md §9.1 register body."""
    items = "".join(f"<serviceId>{s}</serviceId>" for s in service_ids)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<mbmsUserServiceRegistration xmlns="urn:mbmsec:mbms:keymanagement">'
        f"{items}<mikeyPort>{mikey_port}</mikeyPort></mbmsUserServiceRegistration>"
    ).encode()


def item_statuses(body: bytes) -> list[tuple[str, int]]:
    """(serviceId or keyDomainId/MSKID, status) items of a register / msk answer."""
    root = ElementTree.fromstring(body)
    out = []
    for el in root:
        tag = el.tag.rpartition("}")[2]
        vals = {c.tag.rpartition("}")[2]: (c.text or "") for c in el}
        name = vals.get("serviceId") or f"{vals.get('keyDomainId')}/{vals.get('MSKID')}"
        if tag in ("serviceResponse", "MSKResponse"):
            out.append((name, int(vals["status"])))
    return out


@dataclass
class PushReceiver:
    """MSK pushes of the 3GPP profile: §5 checks plus the per-MUK COUNTER rule (§9.3)."""

    btid: str
    bmsc_fqdn: str
    muk: bytes = field(repr=False)
    last_counter: int = 0

    def take_push(self, data: bytes) -> tuple[Mikey, list[Msk]]:
        """Check an MSK push; raise ProtocolError when it must be dropped."""
        msg, msks = check_msk_message(data, muk=self.muk, bmsc_fqdn=self.bmsc_fqdn, btid=self.btid)
        t = msg.one(PT_T)
        if t.fields["ts_type"] != TS_COUNTER:
            raise ProtocolError("pushes carry a COUNTER")
        value = t.fields["value"]
        assert isinstance(value, bytes)
        counter = int.from_bytes(value, "big")
        if counter <= self.last_counter:
            raise ProtocolError("COUNTER not greater than the last accepted")
        self.last_counter = counter
        return msg, msks


def build_verification(msk_message: Mikey, *, muk: bytes, bmsc_fqdn: str, btid: str) -> bytes:
    """protocol.md §7 / RFC 3830 §3.1: HDR(1) T IDr V, V MAC with IDi || IDr || T suffix."""
    t = msk_message.one(PT_T)
    value = t.fields["value"]
    assert isinstance(value, bytes)
    rand = msk_message.one(PT_RAND).fields["rand"]
    assert isinstance(rand, bytes)
    ts_type = t.fields["ts_type"]
    assert isinstance(ts_type, int)
    b = btid.encode()
    body = (
        _hdr(DT_PSK_RESP, PT_T, msk_message.csb_id)
        + bytes([PT_ID, ts_type])
        + value
        + bytes([PT_V, ID_NAI])
        + len(b).to_bytes(2, "big")
        + b
        + bytes([PT_LAST, 1])
    )
    auth = transport_keys(muk, msk_message.csb_id, rand).auth
    return body + hmac_sha1(auth, body + bmsc_fqdn.encode() + b + value)


# ---------------------------------------------------------------------------------------------
# Stand-alone compact UE (blocking sockets)


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def open_group_socket(group: str, port: int) -> socket.socket:
    """A UDP socket bound to a multicast group's port, joined on loopback."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("", port))
    mreq = socket.inet_aton(group) + socket.inet_aton("127.0.0.1")
    with contextlib.suppress(OSError):  # no multicast here: the BM-SC may fan out by unicast
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return s


def main(argv: list[str] | None = None) -> int:
    """Bootstrap, ask for a service's MSK with the compact profile, print MTK IDs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bsf", required=True)
    ap.add_argument("--impi", required=True)
    ap.add_argument("--k", required=True)
    ap.add_argument("--opc", required=True)
    ap.add_argument("--realm", required=True)
    ap.add_argument("--bmsc-fqdn", required=True)
    ap.add_argument("--bmsc-udp", required=True, help="HOST:PORT")
    ap.add_argument("--service", required=True)
    ap.add_argument("--group", help="GROUP:PORT of the service")
    ap.add_argument("--mtks", type=int, default=2, help="MTKs to wait for")
    a = ap.parse_args(argv)
    boot = bootstrap(a.bsf, a.impi, bytes.fromhex(a.k), bytes.fromhex(a.opc), a.realm)
    key = boot.naf_key(a.bmsc_fqdn)
    ue = CompactUe(boot.btid, a.bmsc_fqdn, key, key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    socks = [sock]
    if a.group:
        socks.append(open_group_socket(*_hostport(a.group)))
    req = ue.build_request(time.time(), service_id=a.service)
    sock.sendto(req.raw, _hostport(a.bmsc_udp))
    rx = MtkReceiver()
    end = time.monotonic() + 30
    got = 0
    while time.monotonic() < end and got < a.mtks:
        ready, _, _ = select.select(socks, [], [], 0.5)
        for s in ready:
            data = s.recv(2048)
            try:
                if ue.outstanding and data[1:2] in (b"\x00", b"\x06"):
                    ans = ue.take_answer(data)
                    if isinstance(ans, ErrorAnswer):
                        print(f"error {ans.err_no}", file=sys.stderr)
                        return 1
                    for m in ans:
                        rx.install(m)
                        print(f"msk {m.key_domain.hex()}/{m.msk_id:08x} {m.mtk_first}-{m.mtk_last}")
                    continue
            except ProtocolError:
                pass
            try:
                mtk = rx.take(data)
            except ProtocolError:
                continue
            got += 1
            print(f"mtk {mtk.key_domain.hex()}/{mtk.msk_id:08x} {mtk.mtk_id}")
    return 0 if got >= a.mtks else 1


if __name__ == "__main__":
    sys.exit(main())
