"""GBA key derivation (3GPP TS 33.220 Annex B) and the B-TID (TS 33.220 §4.5.2).

::

    derived key = HMAC-SHA-256(Key, S)                                TS 33.220 Annex B.2
    S = FC || P0 || L0 || P1 || L1 || ... || Pn || Ln                 Li: 2 octets, big-endian
    Ks_NAF      = KDF(Ks, FC=0x01, "gba-me", RAND, IMPI, NAF_Id)        TS 33.220 Annex B.3
    Ks_ext_NAF  = KDF(Ks, FC=0x01, "gba-me", RAND, IMPI, NAF_Id)
    Ks_int_NAF  = KDF(Ks, FC=0x01, "gba-u",  RAND, IMPI, NAF_Id)
    NAF_Id      = FQDN of the NAF || Ua security protocol identifier   TS 33.220 Annex H.3
    Ks          = CK || IK

Character strings (IMPI, FQDN, "gba-me") are normalised with Unicode NFKC and then encoded as
UTF-8 (TS 33.220 Annex B.2.1.2, RFC 3629).
"""

from __future__ import annotations

import base64
import unicodedata

from ..crypto import hmac_sha256

__all__ = [
    "FC_KS_NAF",
    "UA_DIGEST",
    "UA_GPL",
    "UA_HTTP_MBMS",
    "UA_IMS_MEDIA",
    "UA_MBMS",
    "UA_SIP_MBMS",
    "UA_SSC",
    "UA_TLS13",
    "UA_TMPI",
    "btid",
    "derive_ks",
    "encode_string",
    "kdf",
    "ks_ext_naf",
    "ks_int_naf",
    "ks_naf",
    "naf_id",
]

# TS 33.220 Annex B.3: FC value for the derivation of Ks_(ext/int)_NAF.
FC_KS_NAF = 0x01

# TS 33.220 Annex H.3: Ua security protocol identifiers (5 octets each).
UA_SSC = bytes([0x01, 0x00, 0x00, 0x00, 0x00])  # TS 33.221 (subscriber certificates)
UA_MBMS = bytes([0x01, 0x00, 0x00, 0x00, 0x01])  # TS 33.246 MBMS
UA_DIGEST = bytes([0x01, 0x00, 0x00, 0x00, 0x02])  # HTTP digest per TS 24.109
UA_HTTP_MBMS = bytes([0x01, 0x00, 0x00, 0x00, 0x03])  # HTTP-based MBMS user service, TS 26.237
UA_SIP_MBMS = bytes([0x01, 0x00, 0x00, 0x00, 0x04])  # SIP-based user service, TS 26.237
UA_GPL = bytes([0x01, 0x00, 0x00, 0x00, 0x05])  # Generic Push Layer, TS 33.224
UA_IMS_MEDIA = bytes([0x01, 0x00, 0x00, 0x00, 0x06])  # IMS media plane security, TS 33.328
UA_TLS13 = bytes([0x01, 0x00, 0x00, 0x00, 0x07])  # TLS 1.3 shared key, TS 33.222
UA_TMPI = bytes([0x01, 0x00, 0x00, 0x01, 0x00])  # TMPI (TS 33.220 Annex H.3)

UA_ID_LEN = 5
RAND_LEN = 16
KS_LEN = 32
_MAX_PARAM = 0xFFFF

GBA_ME = "gba-me"
GBA_U = "gba-u"


def encode_string(value: str) -> bytes:
    """Encode a character string for the KDF: NFKC, then UTF-8 (TS 33.220 Annex B.2.1.2)."""
    return unicodedata.normalize("NFKC", value).encode("utf-8")


def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """Return HMAC-SHA-256(key, FC || P0 || L0 || ... || Pn || Ln), 32 bytes.

    TS 33.220 Annex B.2. Each Li is the length of Pi in octets as two big-endian octets.
    Raises ``ValueError`` when FC is not one octet or a parameter exceeds 65535 octets.
    """
    if not 0 <= fc <= 0xFF:
        raise ValueError("FC must be one octet")
    s = bytearray([fc])
    for p in params:
        if len(p) > _MAX_PARAM:
            raise ValueError("KDF parameter longer than 65535 octets")
        s += p
        s += len(p).to_bytes(2, "big")
    return hmac_sha256(key, bytes(s))


def naf_id(fqdn: str, ua_protocol_id: bytes) -> bytes:
    """Return NAF_Id = FQDN (NFKC, UTF-8) || Ua security protocol id (TS 33.220 Annex H.3)."""
    if len(ua_protocol_id) != UA_ID_LEN:
        raise ValueError("Ua security protocol identifier must be 5 octets")
    return encode_string(fqdn) + ua_protocol_id


def derive_ks(ck: bytes, ik: bytes) -> bytes:
    """Return Ks = CK || IK (TS 33.220 §4.5.2), 32 bytes."""
    if len(ck) != 16 or len(ik) != 16:
        raise ValueError("CK and IK must be 16 bytes each")
    return ck + ik


def _ks_x_naf(label: str, ks_: bytes, rand: bytes, impi: str, naf_id_: bytes) -> bytes:
    # TS 33.220 Annex B.3
    if len(ks_) != KS_LEN:
        raise ValueError("Ks must be 32 bytes")
    if len(rand) != RAND_LEN:
        raise ValueError("RAND must be 16 bytes")
    return kdf(ks_, FC_KS_NAF, encode_string(label), rand, encode_string(impi), naf_id_)


def ks_naf(ks: bytes, rand: bytes, impi: str, naf_id: bytes) -> bytes:
    """Return Ks_NAF = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id) for GBA_ME (TS 33.220 Annex B.3)."""
    return _ks_x_naf(GBA_ME, ks, rand, impi, naf_id)


def ks_ext_naf(ks: bytes, rand: bytes, impi: str, naf_id: bytes) -> bytes:
    """Return Ks_ext_NAF (GBA_U, ME-based key); same formula as Ks_NAF (TS 33.220 Annex B.3)."""
    return _ks_x_naf(GBA_ME, ks, rand, impi, naf_id)


def ks_int_naf(ks: bytes, rand: bytes, impi: str, naf_id: bytes) -> bytes:
    """Return Ks_int_NAF = KDF(Ks, "gba-u", RAND, IMPI, NAF_Id) (GBA_U, TS 33.220 Annex B.3)."""
    return _ks_x_naf(GBA_U, ks, rand, impi, naf_id)


def btid(rand: bytes, bsf_domain: str) -> str:
    """Return B-TID = base64(RAND) "@" BSF server domain name (TS 33.220 §4.5.2)."""
    if len(rand) != RAND_LEN:
        raise ValueError("RAND must be 16 bytes")
    if not bsf_domain:
        raise ValueError("empty BSF domain")
    return base64.b64encode(rand).decode("ascii") + "@" + bsf_domain
