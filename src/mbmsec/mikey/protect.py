"""MIKEY message protection with a pre-shared key: KEMAC encryption and MAC, verification
message (V), Error message (RFC 3830 §3.1, §4.1.4, §4.2.3, §4.2.4, §5.1.2, §5.2).

Decisions (sources: RFC 3830 text in tex2e/rfc-translater html/rfc3830.html; docs/spec-findings.md
Q4):

- **Transport keys** (§4.1.4): encr_key, auth_key, salt_key = PRF(PSK, constant || 0xFF ||
  CSB ID || RAND) with the CSB ID and RAND of the Initiator's message (the PSK init); the
  verification and Error messages that answer it reuse them. The PSK may be given as a
  precomputed :class:`~mbmsec.mikey.prf.Prf`, which skips the HMAC key schedule per message.
- **KEMAC MAC** (§5.2): HMAC-SHA-1-160 with auth_key over the message from the first HDR byte up
  to and including the KEMAC MAC alg byte, i.e. ``raw[:mac_offset]`` of the bytes received. The
  MAC is checked (constant time) before anything is decrypted.
- **AES-CM-128** (§4.2.3): IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000, S the 112-bit
  salt_key, T the 64-bit timestamp of the Initiator (a COUNTER zero-extended).
- **AES-KW-128** (§4.2.3): RFC 3394 key wrap under encr_key with the **64-bit salt S as IV**
  (the first 8 bytes of the salt_key PRF output), not the RFC 3394 default IV. RFC 3830 gives no
  padding rule and RFC 3394 needs 8n bytes, n >= 2; ours: the Key data chain is padded with zero
  bytes to a multiple of 8 (at least 16). The receiver accepts at most 7 zero bytes after the
  chain's last sub-payload (at most 15 when the plaintext is the 16-byte minimum). An empty
  chain (an update without keys, §6.2) is sent as empty Encr data. The wrap itself is
  :func:`mbmsec.crypto.aes_kw_wrap_iv` (``cryptography``'s aes_key_wrap cannot take an IV).
  Prefer AES-CM-128 for interop.
- **NULL** encryption and NULL MAC are refused by the receiver unless explicitly allowed
  (§4.2.3, §4.2.4: "very restricted usage"; "the NULL MAC SHOULD NOT be used in the pre-shared
  key case").
- **Verification message** (§3.1, §5.2): R_MESSAGE = HDR (data type 1, CSB ID, PRF func and CS ID
  map of the I_MESSAGE, V = 0), T, [IDr], V. The T payload echoes the Initiator's T ("the
  Responder does not create a new timestamp"). V MAC = HMAC-SHA-1(auth_key, R_MESSAGE up to and
  including the V Auth alg byte || ID_i || ID_r || T_i), where ID_i / ID_r are the identity
  **data** (not the ID payload headers) and T_i is the TS value **as carried** in the I_MESSAGE
  (8 bytes NTP/NTP-UTC, 4 bytes COUNTER; §6.6 pads COUNTER to 64 bits only for the PRF). This
  reproduces the [X] vector a061a226... of spec-digest §5.2. ID_i is the data of the
  I_MESSAGE's first ID payload; ID_r is that of the R_MESSAGE's ID payload, else of the
  I_MESSAGE's second ID payload; an absent identity contributes no bytes. A profile that knows
  the identities out of band (MBMS: NAF-Id, B-TID) passes them explicitly. The verifier MACs
  the received R bytes and its own T_i, so a peer that sends a fresh T (minisip) still verifies
  iff it MACed T_i.
- **Error message** (§5.1.2): HDR (data type 6), T, {ERR}, [V]. Its V MAC covers the message
  only (the ID || T suffix of §5.2 is for verification messages) under the auth_key derived from
  the PSK and the CSB ID / RAND of the message being answered. Without a PSK (e.g. answering an
  authentication failure, which §5.1.2 recommends to leave unauthenticated) no V is sent.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import replace
from typing import Final, TypeVar

from ..crypto import aes_cm, aes_kw_unwrap_iv, aes_kw_wrap_iv, mac_equal
from ..errors import (
    AuthError,
    ConfigError,
    DecodeError,
    DecryptError,
    EncryptionNotSupportedError,
    InvalidValueError,
    MacNotSupportedError,
    PrfNotSupportedError,
)
from .codec import DecodeOptions, Message, decode_key_data, encode_key_data, encode_message
from .constants import (
    MAC_LENGTHS,
    CsIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    MacAlg,
    PrfFunc,
)
from .payloads import (
    ErrorPayload,
    Header,
    IdPayload,
    Kemac,
    KeyData,
    Payload,
    Rand,
    Timestamp,
    Verification,
)
from .prf import (
    LABEL_TRANSPORT_AUTH,
    LABEL_TRANSPORT_ENCR,
    LABEL_TRANSPORT_SALT,
    TRANSPORT_CS_ID,
    Prf,
    TransportKeys,
    derive_transport_auth_key,
    derive_transport_keys,
    kemac_iv,
    label,
)

__all__ = [
    "Psk",
    "build_error_message",
    "build_psk_message",
    "build_verification",
    "transport_keys",
    "verify_and_decrypt",
    "verify_error_message",
    "verify_verification",
]

Psk = bytes | Prf
"""A pre-shared key, raw or as a precomputed PRF state (the per-UE cache keeps the latter)."""

_AES_KEY_LEN: Final = 16  # AES-CM-128 / AES-KW-128 (§4.2.3)
_AUTH_KEY_LEN: Final = 20  # HMAC-SHA-1-160 (§4.2.4)
_SALT_LEN: Final = 14  # AES-CM 112-bit salt; AES-KW uses its first 64 bits
_KW_IV_LEN: Final = 8
_KW_MIN_LEN: Final = 16  # RFC 3394: n >= 2 64-bit blocks
_KW_MAX_PAD: Final = 7


# --- keys -------------------------------------------------------------------------------------


def _prf_func(header: Header) -> int:
    func = int(header.prf_func)
    if func not in (PrfFunc.MIKEY_1, PrfFunc.HMAC_SHA_256):
        raise PrfNotSupportedError(f"PRF func {func} not supported")
    return func


def _keyed(psk: Psk, func: int) -> Prf:
    if not isinstance(psk, Prf):
        return Prf(psk, func)
    if psk.func != func:
        # a remote peer chose another PRF than the cached key state was prepared for
        raise PrfNotSupportedError(f"message uses PRF func {func}, key prepared for {psk.func}")
    return psk


def transport_keys(psk: Psk, header: Header, rand: bytes) -> TransportKeys:
    """Derive the RFC 3830 §4.1.4 keys for a message with ``header`` and ``rand``.

    Returns encr_key (16 bytes), auth_key (20), salt_key (14). Raises PrfNotSupportedError.
    """
    func = _prf_func(header)
    return derive_transport_keys(
        _keyed(psk, func), header.csb_id, rand, func, _AES_KEY_LEN, _AUTH_KEY_LEN, _SALT_LEN
    )


def _auth_key(psk: Psk, header: Header, rand: bytes) -> bytes:
    func = _prf_func(header)
    return derive_transport_auth_key(_keyed(psk, func), header.csb_id, rand, func, _AUTH_KEY_LEN)


def _hmac_sha1(key: bytes, *parts: bytes) -> bytes:
    # RFC 3830 §4.2.4: HMAC-SHA-1, 160-bit tag
    if len(parts) == 1:
        return hmac.digest(key, parts[0], "sha1")
    h = hmac.new(key, digestmod="sha1")
    for p in parts:
        h.update(p)
    return h.digest()


def _mac(alg: int, key: bytes, *parts: bytes) -> bytes:
    if alg == MacAlg.HMAC_SHA_1_160:
        return _hmac_sha1(key, *parts)
    if alg == MacAlg.NULL:
        return b""
    raise MacNotSupportedError(f"MAC alg {alg} not supported")


def _require_mac(alg: int, allow_null_mac: bool, what: str) -> None:
    if alg == MacAlg.NULL and not allow_null_mac:
        raise AuthError(f"{what} carries a NULL MAC; not accepted")
    if alg not in MAC_LENGTHS:
        raise MacNotSupportedError(f"MAC alg {alg} not supported")


# --- KEMAC (PSK I_MESSAGE) --------------------------------------------------------------------


T = TypeVar("T")


def _first(payloads: Sequence[object], cls: type[T]) -> T | None:
    for p in payloads:
        if isinstance(p, cls):
            return p
    return None


def _encrypt(alg: int, keys: TransportKeys, csb_id: int, t: Timestamp | None, pt: bytes) -> bytes:
    # RFC 3830 §4.2.3
    if alg == EncrAlg.NULL:
        return pt
    if alg == EncrAlg.AES_CM_128:
        if t is None:
            raise ConfigError("AES-CM KEMAC needs a T payload for the IV")
        return aes_cm(keys.encr_key, kemac_iv(keys.salt_key, csb_id, t.value), pt)
    if alg == EncrAlg.AES_KW_128:
        if not pt:
            return b""  # an empty Key data chain stays empty (the receiver maps b"" to b"")
        padded = pt + bytes(-len(pt) % 8)
        padded += bytes(max(0, _KW_MIN_LEN - len(padded)))
        return aes_kw_wrap_iv(keys.encr_key, keys.salt_key[:_KW_IV_LEN], padded)
    raise EncryptionNotSupportedError(f"Encr alg {alg} not supported")


def _decrypt(alg: int, keys: TransportKeys, csb_id: int, t: Timestamp | None, ct: bytes) -> bytes:
    # RFC 3830 §4.2.3
    if alg == EncrAlg.AES_CM_128:
        if t is None:
            raise InvalidValueError("AES-CM KEMAC without a T payload")
        return aes_cm(keys.encr_key, kemac_iv(keys.salt_key, csb_id, t.value), ct)
    if alg == EncrAlg.AES_KW_128:
        if not ct:
            return b""
        return aes_kw_unwrap_iv(keys.encr_key, keys.salt_key[:_KW_IV_LEN], ct)
    if alg == EncrAlg.NULL:
        return ct
    raise EncryptionNotSupportedError(f"Encr alg {alg} not supported")


def build_psk_message(
    header: Header,
    payloads_before_kemac: Sequence[Payload],
    key_data: Sequence[KeyData],
    psk: Psk,
    encr_alg: EncrAlg = EncrAlg.AES_CM_128,
    mac_alg: MacAlg = MacAlg.HMAC_SHA_1_160,
    *,
    rand: bytes | None = None,
    keys: TransportKeys | None = None,
) -> bytes:
    """Build a PSK message ending in a KEMAC (RFC 3830 §3.1, §5.2): encode, encrypt the Key data
    chain under encr_key, MAC everything up to and including the MAC alg byte with auth_key.

    The keys derive from ``psk``, the header's CSB ID and the RAND payload (or ``rand`` for an
    update message without RAND); ``keys`` skips the derivation. Returns the message bytes.
    Raises ConfigError (bad arguments) or an UnsupportedAlgorithmError.
    """
    t = _first(payloads_before_kemac, Timestamp)
    if keys is None:
        keys = transport_keys(psk, header, _rand_for(payloads_before_kemac, rand))
    pt = encode_key_data(key_data)
    ct = _encrypt(encr_alg, keys, header.csb_id, t, pt)
    kemac = Kemac(encr_alg, ct, mac_alg, b"")
    body = encode_message(header, [*payloads_before_kemac, kemac], without_final_mac=True)
    return body + _mac(mac_alg, keys.auth_key, body)


def _rand_for(payloads: Sequence[Payload], rand: bytes | None) -> bytes:
    if rand is not None:
        return rand
    r = _first(payloads, Rand)
    if r is None:
        raise ConfigError("no RAND payload and no rand given for the key derivation")
    return r.rand


def verify_and_decrypt(
    message: Message,
    psk: Psk,
    options: DecodeOptions | None = None,
    *,
    rand: bytes | None = None,
    keys: TransportKeys | None = None,
    allow_null_mac: bool = False,
    allow_null_encr: bool = False,
) -> tuple[KeyData, ...]:
    """Check the KEMAC MAC of a received PSK message, then decrypt and decode its key data.

    The MAC covers ``message.raw[:mac_offset]`` exactly as received (RFC 3830 §5.2) and is
    compared in constant time before any decryption. ``rand`` supplies the RAND of the CSB for
    an update message that carries none. Returns the Key data sub-payloads.

    Raises DecodeError when the message has no final KEMAC or no RAND, AuthError on a MAC
    mismatch or a refused NULL MAC, DecryptError when the plaintext does not unwrap or parse,
    and UnsupportedAlgorithmError subclasses for unknown PRF / MAC / encryption algorithms.
    """
    kemac = message.payloads[-1] if message.payloads else None
    if not isinstance(kemac, Kemac) or message.mac_offset is None:
        raise DecodeError("PSK message must end with a KEMAC payload")
    _require_mac(kemac.mac_alg, allow_null_mac, "KEMAC")
    header = message.header
    prf: Prf | None = None
    r = rand
    if keys is None:
        if r is None:
            rp = message.find(Rand)
            if rp is None:
                raise DecodeError("PSK message without RAND and no CSB RAND known")
            r = rp.rand
        func = _prf_func(header)
        prf = _keyed(psk, func)
        auth_key = prf.derive(label(LABEL_TRANSPORT_AUTH, TRANSPORT_CS_ID, header.csb_id, r), 20)
    else:
        auth_key = keys.auth_key
    # RFC 3830 §5.2: the MAC covers the bytes as received; checked before anything else is done
    mac = _mac(kemac.mac_alg, auth_key, message.raw[: message.mac_offset])
    if not mac_equal(mac, kemac.mac):
        raise AuthError("KEMAC MAC does not verify")
    if kemac.encr_alg == EncrAlg.NULL and not allow_null_encr:
        raise EncryptionNotSupportedError("NULL KEMAC encryption not accepted")
    if kemac.encr_alg not in (EncrAlg.NULL, EncrAlg.AES_CM_128, EncrAlg.AES_KW_128):
        raise EncryptionNotSupportedError(f"Encr alg {kemac.encr_alg} not supported")
    if keys is None:
        assert prf is not None and r is not None
        keys = TransportKeys(
            encr_key=prf.derive(label(LABEL_TRANSPORT_ENCR, TRANSPORT_CS_ID, header.csb_id, r), 16),
            auth_key=auth_key,
            salt_key=prf.derive(label(LABEL_TRANSPORT_SALT, TRANSPORT_CS_ID, header.csb_id, r), 14),
        )
    pt = _decrypt(kemac.encr_alg, keys, header.csb_id, message.find(Timestamp), kemac.encr_data)
    max_pad = 0
    if kemac.encr_alg == EncrAlg.AES_KW_128:
        # padding to a multiple of 8, and a chain shorter than 9 bytes up to 16 bytes
        max_pad = _KW_MAX_PAD if len(pt) > _KW_MIN_LEN else _KW_MIN_LEN - 1
    try:
        return decode_key_data(pt, options, max_zero_padding=max_pad)
    except DecodeError as exc:
        raise DecryptError(f"decrypted key data does not parse: {exc.reason}") from exc


# --- verification message (RFC 3830 §3.1, §5.2, §6.9) -----------------------------------------


def _identities(
    i_message: Message, r_payloads: Sequence[Payload], id_i: bytes | None, id_r: bytes | None
) -> tuple[bytes, bytes]:
    i_ids = i_message.find_all(IdPayload)
    if id_i is None:
        id_i = i_ids[0].data if i_ids else b""
    if id_r is None:
        r_ids = [p for p in r_payloads if isinstance(p, IdPayload)]
        fallback = i_ids[1].data if len(i_ids) > 1 else b""
        id_r = r_ids[0].data if r_ids else fallback
    return id_i, id_r


def _i_context(i_message: Message) -> tuple[Timestamp, bytes]:
    t = i_message.find(Timestamp)
    r = i_message.find(Rand)
    if t is None or r is None:
        raise DecodeError("I_MESSAGE lacks the T or RAND payload the verification needs")
    return t, r.rand


def build_verification(
    i_message: Message,
    psk: Psk,
    *,
    idr: IdPayload | None = None,
    id_i: bytes | None = None,
    id_r: bytes | None = None,
    auth_key: bytes | None = None,
) -> bytes:
    """Build the R_MESSAGE = HDR, T, [IDr], V answering ``i_message`` (RFC 3830 §3.1, §5.2).

    HDR copies the I_MESSAGE's CSB ID, PRF func and CS ID map with data type 1; T echoes T_i.
    The V MAC (HMAC-SHA-1-160) covers the R_MESSAGE up to the Auth alg byte || ID_i || ID_r ||
    T_i (see the module docstring). Returns the bytes; raises DecodeError if the I_MESSAGE has
    no T or RAND.
    """
    t_i, rand = _i_context(i_message)
    h = replace(i_message.header, data_type=DataType.PSK_VERIFY, v=False)
    payloads: list[Payload] = [t_i]
    if idr is not None:
        payloads.append(idr)
    payloads.append(Verification(MacAlg.HMAC_SHA_1_160, b""))
    body = encode_message(h, payloads, without_final_mac=True)
    ii, ir = _identities(i_message, payloads, id_i, id_r)
    key = auth_key if auth_key is not None else _auth_key(psk, i_message.header, rand)
    return body + _hmac_sha1(key, body, ii, ir, t_i.value_bytes)


def verify_verification(
    r_message: Message,
    i_message: Message,
    psk: Psk,
    *,
    id_i: bytes | None = None,
    id_r: bytes | None = None,
    auth_key: bytes | None = None,
    allow_null_mac: bool = False,
) -> None:
    """Check a verification message ``r_message`` against the ``i_message`` it answers.

    Checks data type 1, the CSB ID, a final V, then the V MAC over the received bytes ||
    ID_i || ID_r || T_i in constant time. Returns None; raises DecodeError (shape), AuthError
    (MAC), MacNotSupportedError.
    """
    if r_message.header.data_type != DataType.PSK_VERIFY:
        raise DecodeError(f"data type {r_message.header.data_type} is not a verification message")
    if r_message.header.csb_id != i_message.header.csb_id:
        raise AuthError("verification message for another CSB ID")
    v = r_message.payloads[-1] if r_message.payloads else None
    if not isinstance(v, Verification) or r_message.mac_offset is None:
        raise DecodeError("verification message must end with a V payload")
    _require_mac(v.auth_alg, allow_null_mac, "V payload")
    t_i, rand = _i_context(i_message)
    ii, ir = _identities(i_message, r_message.payloads, id_i, id_r)
    key = auth_key if auth_key is not None else _auth_key(psk, i_message.header, rand)
    mac = _mac(v.auth_alg, key, r_message.raw[: r_message.mac_offset], ii, ir, t_i.value_bytes)
    if not mac_equal(mac, v.mac):
        raise AuthError("V MAC does not verify")


# --- Error message (RFC 3830 §5.1.2, §6.12) -----------------------------------------------------


def build_error_message(
    csb_id: int,
    t: Timestamp,
    errors: Sequence[ErrorNo | int],
    psk: Psk | None = None,
    rand: bytes | None = None,
    *,
    prf_func: PrfFunc | int = PrfFunc.MIKEY_1,
    auth_key: bytes | None = None,
) -> bytes:
    """Build an Error message HDR (data type 6), T, {ERR}, [V] (RFC 3830 §5.1.2).

    With ``psk`` and ``rand`` (the RAND of the message being answered), or an ``auth_key``, a V
    payload with HMAC-SHA-1-160 over the whole message is appended; otherwise no V. Raises
    ConfigError for an empty error list or a PSK without RAND.
    """
    if not errors:
        raise ConfigError("an Error message needs at least one ERR payload")
    h = Header(DataType.ERROR, csb_id, prf_func=prf_func, cs_id_map_type=CsIdMapType.EMPTY)
    payloads: list[Payload] = [t, *(ErrorPayload(e) for e in errors)]
    if auth_key is None and psk is not None:
        if rand is None:
            raise ConfigError("deriving the Error message auth_key needs the RAND")
        auth_key = _auth_key(psk, h, rand)
    if auth_key is None:
        return encode_message(h, payloads)
    body = encode_message(
        h, [*payloads, Verification(MacAlg.HMAC_SHA_1_160, b"")], without_final_mac=True
    )
    return body + _hmac_sha1(auth_key, body)


def verify_error_message(
    message: Message,
    psk: Psk | None = None,
    rand: bytes | None = None,
    *,
    auth_key: bytes | None = None,
    require_mac: bool = True,
) -> tuple[ErrorNo | int, ...]:
    """Check an Error message and return its error numbers in wire order.

    With ``require_mac`` (default) the message must end with a V whose HMAC-SHA-1-160 over the
    message verifies under the auth_key (given, or derived from ``psk``, the message's CSB ID
    and ``rand``). Raises DecodeError (not an Error message), AuthError.
    """
    if message.header.data_type != DataType.ERROR:
        raise DecodeError(f"data type {message.header.data_type} is not an Error message")
    v = message.payloads[-1] if message.payloads else None
    if isinstance(v, Verification) and message.mac_offset is not None:
        if auth_key is None:
            if psk is None or rand is None:
                if require_mac:
                    raise AuthError("no key to check the Error message V MAC")
            else:
                auth_key = _auth_key(psk, message.header, rand)
        if auth_key is not None:
            _require_mac(v.auth_alg, not require_mac, "Error message V")
            mac = _mac(v.auth_alg, auth_key, message.raw[: message.mac_offset])
            if not mac_equal(mac, v.mac):
                raise AuthError("Error message V MAC does not verify")
    elif require_mac:
        raise AuthError("Error message is not authenticated (no V payload)")
    return tuple(p.error_no for p in message.find_all(ErrorPayload))
