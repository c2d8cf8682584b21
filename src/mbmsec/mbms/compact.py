"""The compact profile: one UDP round trip, MIKEY key request -> MSK message or Error message.

This is the original proposal (spec-digest §6) in RFC 3830 wire format. Only the request needs
a new code point, the private-use HDR data type 241 (RFC 3830 §10: 241-255 private use)::

    PSK key request (UE -> BM-SC)
      HDR(version 1, data type 241, V 0, PRF 0 MIKEY-1, CSB ID = random, #CS 0, map 1)
      T(NTP-UTC, the UE's clock)  RAND(16, fresh)  IDi(NAI: B-TID)
      EXT(Key ID: {241: serviceId} and/or {0: Key Domain ID}{1: MSK ID}) = Key-Ref
      V(HMAC-SHA-1-160) over the whole request up to and including the V Auth alg byte,
        auth_key = PRF(MRK, 0x2D22AC75 || 0xFF || CSB ID || RAND)          RFC 3830 §4.1.4

    Key response (BM-SC -> UE) = the MSK message of :mod:`.messages` (standard PSK I_MESSAGE):
      HDR CSB ID = the request's CSB ID, T = the request's T (echo), fresh RAND, IDi BM-SC FQDN,
      IDr B-TID, KEMAC under MUK-derived keys with the current MSK (and the next one when its
      start is near). V 0.

    Error (BM-SC -> UE) = standard Error message: HDR(type 6, CSB ID of the request), T (echo),
      ERR(cause), [V]. V is HMAC-SHA-1 under the request's auth_key (MRK, CSB ID, RAND) when
      the request's MAC verified; no V for the two "KEK not in place" causes, which the BM-SC
      cannot authenticate because it has no MRK.

Replay protection: the BM-SC keeps no per-request state. It accepts a request only when T lies
within the clock-skew window and the request's MAC is not in the (bounded) replay cache
(RFC 3830 §5.4, :class:`mbmsec.mikey.replay.ReplayGuard`). The UE accepts a response only when
its CSB ID and T equal those of a request it has outstanding, and forgets the request then; so
a replayed response is never accepted, and a replayed request (another worker, cache lost)
earns at most an answer the UE drops. See docs/protocol.md for causes and size bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from ..crypto import hmac_sha1, mac_equal
from ..errors import AuthError, ConfigError, DecodeError, InvalidValueError
from ..mikey.codec import DecodeOptions, Message, decode_message, encode_message
from ..mikey.constants import (
    CsIdMapType,
    DataType,
    IdType,
    MacAlg,
    PrfFunc,
    TsType,
)
from ..mikey.payloads import (
    Header,
    IdPayload,
    KeyIdExtension,
    Payload,
    Rand,
    Timestamp,
    Verification,
)
from ..mikey.prf import derive_transport_auth_key
from ..mikey.protect import Psk, build_error_message, verify_error_message
from ..mikey.replay import ntp_to_unix, unix_to_ntp
from .keys import KeyRef, MukId, key_id_extension, parse_key_id_extension
from .messages import (
    MSG_OPTIONS,
    RAND_LEN,
    MskKey,
    MskMessage,
    build_msk_message,
    check_msk_message,
)

__all__ = [
    "REQUEST_OPTIONS",
    "UNAUTHENTICATED_CAUSES",
    "ErrorCause",
    "KeyErrorReply",
    "KeyRequest",
    "PendingKeyRequest",
    "build_key_error",
    "build_key_request",
    "build_key_response",
    "check_key_response",
    "parse_key_request",
    "verify_key_request",
]

MAX_REQUEST_SIZE: Final = 1024
REQUEST_OPTIONS: Final = DecodeOptions(max_message_size=MAX_REQUEST_SIZE, max_payloads=8)
_AUTH_KEY_LEN: Final = 20


class ErrorCause(IntEnum):
    """ERR Error no values of the compact profile (RFC 3830 §6.12; 241-255 private use, §10)."""

    INVALID_TS = 1  # RFC 3830: T outside the BM-SC's clock-skew window (authenticated)
    UNSPECIFIED = 12  # RFC 3830: anything else (authenticated)
    BTID_UNKNOWN = 241  # KEK not in place: B-TID unknown or expired -> bootstrap again
    KEK_UNAVAILABLE = 242  # KEK not in place: BSF/HSS unreachable or lookup pending -> retry
    SERVICE_UNKNOWN = 243  # no such user service / Key Domain / key group
    NOT_AUTHORIZED = 244  # the user may not receive this service's keys
    KEY_NOT_AVAILABLE = 245  # the named MSK is not (yet / any more) available


UNAUTHENTICATED_CAUSES: Final = frozenset({ErrorCause.BTID_UNKNOWN, ErrorCause.KEK_UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A parsed (not yet authenticated) PSK key request."""

    btid: str
    key_ref: KeyRef
    csb_id: int
    timestamp: Timestamp
    rand: bytes
    mac: bytes
    message: Message = field(repr=False)

    def time(self, near: float) -> float:
        """The request's NTP-UTC timestamp as POSIX seconds (era chosen nearest ``near``)."""
        return ntp_to_unix(self.timestamp.value, near)


@dataclass(frozen=True, slots=True)
class PendingKeyRequest:
    """UE side: what it must remember of a request it sent, to recognise the answer."""

    btid: str
    key_ref: KeyRef
    csb_id: int
    timestamp: Timestamp
    rand: bytes
    sent_at: float


@dataclass(frozen=True, slots=True)
class KeyErrorReply:
    """A MIKEY Error message answering a request: causes, and whether its V MAC verified."""

    causes: tuple[int, ...]
    authenticated: bool


def _request_header(csb_id: int) -> Header:
    # RFC 3830 §6.1 with the private-use data type (§10) and the empty map (RFC 4563 §5)
    return Header(
        DataType.PSK_KEY_REQUEST,
        csb_id,
        prf_func=PrfFunc.MIKEY_1,
        cs_id_map_type=CsIdMapType.EMPTY,
    )


def _auth_key(mrk: Psk, csb_id: int, rand: bytes) -> bytes:
    # RFC 3830 §4.1.4: auth_key = PRF(MRK, 0x2D22AC75 || 0xFF || CSB ID || RAND), 160 bits
    return derive_transport_auth_key(mrk, csb_id, rand, PrfFunc.MIKEY_1, _AUTH_KEY_LEN)


def build_key_request(
    *, btid: str, key_ref: KeyRef, mrk: Psk, now: float, rng: Callable[[int], bytes]
) -> tuple[bytes, PendingKeyRequest]:
    """Build a PSK key request (data type 241) and the state the UE keeps for its answer.

    ``rng`` gives the CSB ID (4 bytes) and RAND (16 bytes); ``now`` the NTP-UTC T. Raises
    ConfigError for an empty Key-Ref or a B-TID that does not fit.
    """
    if key_ref.service_id is None and not key_ref.msk_ids:
        raise ConfigError("Key-Ref must name a service ID or an MSK ID")
    csb_id = int.from_bytes(rng(4), "big")
    rand = rng(RAND_LEN)
    t = Timestamp(TsType.NTP_UTC, unix_to_ntp(now))
    payloads: list[Payload] = [
        t,
        Rand(rand),
        IdPayload(IdType.NAI, btid.encode("utf-8")),
        key_id_extension(key_ref),
        Verification(MacAlg.HMAC_SHA_1_160, b""),
    ]
    body = encode_message(_request_header(csb_id), payloads, without_final_mac=True)
    data = body + hmac_sha1(_auth_key(mrk, csb_id, rand), body)
    return data, PendingKeyRequest(btid, key_ref, csb_id, t, rand, now)


def parse_key_request(data: bytes) -> KeyRequest:
    """Decode a PSK key request and check its shape (no authentication yet).

    Exactly: HDR(type 241, PRF MIKEY-1, #CS 0, empty map, V 0), T(NTP-UTC), RAND(16), one ID
    (NAI, UTF-8 B-TID), one Key ID EXT naming a service or an MSK, and a final V with
    HMAC-SHA-1-160. Returns :class:`KeyRequest`; raises DecodeError (or a subclass).
    """
    msg = decode_message(data, REQUEST_OPTIONS)
    h = msg.header
    if h.data_type != DataType.PSK_KEY_REQUEST:
        raise InvalidValueError(f"data type {h.data_type} is not a PSK key request")
    if h.prf_func != PrfFunc.MIKEY_1 or h.cs_id_map_type != CsIdMapType.EMPTY or h.cs_count:
        raise InvalidValueError("key request must use PRF MIKEY-1 and #CS 0 / empty map")
    kinds = [type(p) for p in msg.payloads]
    if kinds != [Timestamp, Rand, IdPayload, KeyIdExtension, Verification]:
        raise InvalidValueError("key request payloads must be T, RAND, IDi, EXT, V")
    t, r, idp, ext, v = msg.payloads
    assert isinstance(t, Timestamp) and isinstance(r, Rand) and isinstance(idp, IdPayload)
    assert isinstance(ext, KeyIdExtension) and isinstance(v, Verification)
    if t.ts_type != TsType.NTP_UTC:
        raise InvalidValueError("key request T must be NTP-UTC")
    if len(r.rand) != RAND_LEN:
        raise InvalidValueError(f"key request RAND must be {RAND_LEN} bytes")
    if idp.id_type != IdType.NAI or not idp.data:
        raise InvalidValueError("key request IDi must be a non-empty NAI (the B-TID)")
    if v.auth_alg != MacAlg.HMAC_SHA_1_160:
        raise InvalidValueError("key request V must be HMAC-SHA-1-160")
    try:
        btid = idp.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValueError("B-TID is not UTF-8") from None
    key_ref = parse_key_id_extension(ext)
    if key_ref.mtk_id is not None or len(key_ref.msk_ids) > 1:
        raise InvalidValueError("Key-Ref names at most one MSK and no MTK")
    if key_ref.service_id is None and (key_ref.key_domain_id is None or not key_ref.msk_ids):
        raise InvalidValueError("Key-Ref must name a service ID or Key Domain ID + MSK ID")
    return KeyRequest(btid, key_ref, h.csb_id, t, r.rand, v.mac, msg)


def verify_key_request(req: KeyRequest, mrk: Psk) -> None:
    """Check the request's V MAC under the MRK-derived auth_key, in constant time.

    Returns None; raises AuthError on mismatch.
    """
    mac = hmac_sha1(_auth_key(mrk, req.csb_id, req.rand), req.message.mac_input)
    if not mac_equal(mac, req.mac):
        raise AuthError("key request MAC does not verify")


def build_key_response(
    req: KeyRequest, msks: list[MskKey], muk: Psk, muk_id: MukId, *, rand: bytes
) -> bytes:
    """The MSK message answering ``req``: CSB ID and T echoed, fresh ``rand``, V 0.

    Raises ConfigError as :func:`~.messages.build_msk_message` does.
    """
    return build_msk_message(msks, muk, muk_id, req.timestamp, csb_id=req.csb_id, rand=rand)


def build_key_error(req: KeyRequest, cause: ErrorCause, mrk: Psk | None) -> bytes:
    """The Error message answering ``req`` with ``cause``: HDR(type 6, request CSB ID),
    T (echo), ERR, and a V under the request's auth_key when ``mrk`` is given.

    The two "KEK not in place" causes must be sent without MRK, the others with it; raises
    ConfigError otherwise.
    """
    if (cause in UNAUTHENTICATED_CAUSES) != (mrk is None):
        raise ConfigError(f"cause {cause.name} is sent {'without' if mrk is None else 'with'} V")
    auth_key = None if mrk is None else _auth_key(mrk, req.csb_id, req.rand)
    return build_error_message(req.csb_id, req.timestamp, [cause], auth_key=auth_key)


def check_key_response(
    data: bytes, pending: PendingKeyRequest, *, muk: Psk, mrk: Psk, muk_id: MukId
) -> MskMessage | KeyErrorReply:
    """UE side: check an answer to the outstanding request ``pending``.

    An MSK message must carry the request's CSB ID and T and verify under the MUK; an Error
    message must carry them too, and verify under the MRK unless every cause is one of the
    unauthenticated "KEK not in place" causes. Returns the MSK message or a
    :class:`KeyErrorReply`; raises DecodeError (shape, not an answer to ``pending``) or
    AuthError (MAC, IDs) — drop the datagram silently then.
    """
    msg = decode_message(data, MSG_OPTIONS)
    if msg.header.csb_id != pending.csb_id:
        raise DecodeError("answer for another CSB ID")
    t = msg.find(Timestamp)
    if t is None or t != pending.timestamp:
        raise DecodeError("answer does not echo the request's T")
    if msg.header.data_type == DataType.ERROR:
        has_v = isinstance(msg.payloads[-1] if msg.payloads else None, Verification)
        if has_v:
            causes = verify_error_message(
                msg, auth_key=_auth_key(mrk, pending.csb_id, pending.rand)
            )
            return KeyErrorReply(tuple(int(c) for c in causes), True)
        causes = verify_error_message(msg, require_mac=False)
        if not causes or any(c not in UNAUTHENTICATED_CAUSES for c in causes):
            raise AuthError("unauthenticated Error message with an authenticated-only cause")
        return KeyErrorReply(tuple(int(c) for c in causes), False)
    return check_msk_message(msg, muk, expected_muk_id=muk_id)
