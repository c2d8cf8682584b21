"""MIKEY message codec (RFC 3830 §6, RFC 4563 §4-§5, RFC 6043 §6.1.2.1).

The per-payload ``pull_<payload>(buf) -> (payload, next_payload)`` /
``push_<payload>(buf, p, next_payload)`` pairs live in :mod:`mbmsec.mikey.wire` and are
re-exported here. :func:`decode_message` walks the next-payload chain in wire order through a
dispatch table, keeps the exact received bytes and the offset of the final MAC, so a verifier
MACs what was received (``raw[:mac_offset]``), never a re-encoding. :func:`encode_message`
derives the next-payload bytes from the order of the payload list; for every valid message
``encode_message(*decode(x)) == x``.

Rules (strict by default, see :class:`DecodeOptions`):

- version must be 1 (UnsupportedVersionError); a next-payload value naming no payload, or
  naming Key data (20) outside KEMAC/PKE plaintext, raises UnknownPayloadError (offset of the
  next-payload byte that names it);
- a field that decides the layout (CS ID map type, MAC alg, TS type, DH group, hash function,
  key data type, KV type) must hold a known value (InvalidValueError); other code points keep
  unknown values as ints;
- bad lengths raise BadLengthError (a MAC shorter than its algorithm needs, RAND len 0, an empty
  key), reads past the end TruncatedError, bytes after the last payload TrailingDataError, too
  many payloads TooManyPayloadsError, an oversize message OversizeError. Each names the offset.
- SIGN has no next-payload byte and therefore always ends the message.
- RFC 4563 §5: with CS ID map type 1 (empty map) "there MUST NOT be any Security Policy payload
  present in the message": an SP payload then raises InvalidValueError at the SP payload's
  offset (``lenient_empty_map_sp`` accepts it); the encoder refuses to write one.

Any other input error is turned into DecodeError at the boundary; nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from ..buffer import Buffer
from ..errors import (
    ConfigError,
    DecodeError,
    InvalidValueError,
    OversizeError,
    TooManyPayloadsError,
    TrailingDataError,
    UnknownPayloadError,
)
from .constants import CsIdMapType, PayloadType
from .payloads import (
    Cert,
    Chash,
    Dh,
    ErrorPayload,
    GeneralExtension,
    Header,
    IdPayload,
    Kemac,
    KeyData,
    KeyIdExtension,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    Timestamp,
    Verification,
)
from .wire import (
    pull_cert,
    pull_chash,
    pull_dh,
    pull_err,
    pull_general_ext,
    pull_header,
    pull_id,
    pull_kemac,
    pull_key_data,
    pull_pke,
    pull_rand,
    pull_sign,
    pull_sp,
    pull_timestamp,
    pull_verification,
    push_cert,
    push_chash,
    push_dh,
    push_err,
    push_general_ext,
    push_header,
    push_id,
    push_kemac,
    push_key_data,
    push_pke,
    push_rand,
    push_sign,
    push_sp,
    push_timestamp,
    push_verification,
)

__all__ = [
    "DecodeOptions",
    "Message",
    "decode_key_data",
    "decode_message",
    "encode_key_data",
    "encode_message",
    "pull_cert",
    "pull_chash",
    "pull_dh",
    "pull_err",
    "pull_general_ext",
    "pull_header",
    "pull_id",
    "pull_kemac",
    "pull_key_data",
    "pull_pke",
    "pull_rand",
    "pull_sign",
    "pull_sp",
    "pull_timestamp",
    "pull_verification",
    "push_cert",
    "push_chash",
    "push_dh",
    "push_err",
    "push_general_ext",
    "push_header",
    "push_id",
    "push_kemac",
    "push_key_data",
    "push_pke",
    "push_rand",
    "push_sign",
    "push_sp",
    "push_timestamp",
    "push_verification",
]

HDR_NEXT_PAYLOAD_OFFSET: Final = 2


@dataclass(frozen=True)
class DecodeOptions:
    """Limits and leniency switches for :func:`decode_message` and :func:`decode_key_data`."""

    max_message_size: int = 4096
    max_payloads: int = 32
    lenient_trailing_padding: bool = False  # accept exactly one 0x00 after the last payload
    lenient_key_salt_concat: bool = False  # split a TEK key of 30/46 bytes into key || salt
    lenient_empty_map_sp: bool = False  # accept SP payloads with the empty map (RFC 4563 §5)


P = TypeVar("P")


@dataclass(frozen=True)
class Message:
    """A decoded MIKEY message.

    ``payload_offsets[i]`` is the offset of payload ``i`` in ``raw``. ``mac_offset`` is the
    offset of the MAC value of the final KEMAC or V payload (the MAC covers
    ``raw[:mac_offset]``), None when the message does not end with one. ``signature_offset`` is
    the offset of the SIGN signature field. ``padding`` counts accepted trailing pad bytes.
    """

    header: Header
    payloads: tuple[Payload, ...]
    raw: bytes = field(repr=False)
    payload_offsets: tuple[int, ...] = ()
    mac_offset: int | None = None
    signature_offset: int | None = None
    padding: int = 0

    def find(self, cls: type[P]) -> P | None:
        """The first payload of class ``cls``, or None."""
        for p in self.payloads:
            if isinstance(p, cls):
                return p
        return None

    def find_all(self, cls: type[P]) -> tuple[P, ...]:
        """All payloads of class ``cls`` in wire order."""
        return tuple(p for p in self.payloads if isinstance(p, cls))

    @property
    def mac_input(self) -> bytes:
        """The bytes the final MAC covers (RFC 3830 §5.2). Raises DecodeError without MAC."""
        if self.mac_offset is None:
            raise DecodeError("message does not end with a KEMAC or V payload")
        return self.raw[: self.mac_offset]


def decode_key_data(
    plaintext: bytes,
    options: DecodeOptions | None = None,
    *,
    base_offset: int = 0,
    max_zero_padding: int = 0,
) -> tuple[KeyData, ...]:
    """Decode a (decrypted) KEMAC Key data chain (RFC 3830 §6.2, §6.13).

    Empty input gives ``()`` (an update message may carry no key, §6.2). Up to
    ``max_zero_padding`` zero bytes may follow the last sub-payload (AES-KW padding). Offsets in
    errors are ``base_offset`` + position in ``plaintext``. Raises DecodeError (or a subclass).
    """
    opts = options if options is not None else _DEFAULT_OPTIONS
    buf = Buffer(plaintext, base_offset=base_offset)
    items: list[KeyData] = []
    try:
        nxt: int = PayloadType.KEY_DATA if plaintext else PayloadType.LAST
        np_off = base_offset
        while nxt != PayloadType.LAST:
            if nxt != PayloadType.KEY_DATA:
                raise UnknownPayloadError(f"payload {nxt} inside key data chain", np_off)
            np_off = buf.offset
            if len(items) >= opts.max_payloads:
                raise TooManyPayloadsError(f"more than {opts.max_payloads} key data", np_off)
            item, nxt = pull_key_data(buf, salt_concat=opts.lenient_key_salt_concat)
            items.append(item)
        rest = buf.remaining()
        if rest and (rest > max_zero_padding or any(buf.pull_rest())):
            raise TrailingDataError(
                f"{rest} bytes after key data", base_offset + len(plaintext) - rest
            )
    except DecodeError:
        raise
    except Exception as exc:  # defensive: nothing but DecodeError leaves a decoder
        raise DecodeError(f"malformed key data: {type(exc).__name__}", buf.offset) from exc
    return tuple(items)


def encode_key_data(items: Iterable[KeyData]) -> bytes:
    """Encode a Key data chain for the KEMAC (RFC 3830 §6.13). Raises ConfigError."""
    seq = list(items)
    buf = Buffer()
    try:
        for i, kd in enumerate(seq):
            nxt = PayloadType.KEY_DATA if i + 1 < len(seq) else PayloadType.LAST
            push_key_data(buf, kd, nxt)
    except (OverflowError, ValueError) as exc:
        raise ConfigError(f"key data field out of range: {exc}") from exc
    return buf.getvalue()


# --- messages ---------------------------------------------------------------------------------

_PULL: Final[dict[int, Callable[[Buffer], tuple[Any, int]]]] = {
    PayloadType.KEMAC: pull_kemac,
    PayloadType.PKE: pull_pke,
    PayloadType.DH: pull_dh,
    PayloadType.SIGN: pull_sign,
    PayloadType.T: pull_timestamp,
    PayloadType.ID: pull_id,
    PayloadType.CERT: pull_cert,
    PayloadType.CHASH: pull_chash,
    PayloadType.V: pull_verification,
    PayloadType.SP: pull_sp,
    PayloadType.RAND: pull_rand,
    PayloadType.ERR: pull_err,
    PayloadType.GENERAL_EXT: pull_general_ext,
}

_PUSH: Final[dict[type, Callable[[Buffer, Any, int], None]]] = {
    Kemac: push_kemac,
    Pke: push_pke,
    Dh: push_dh,
    Sign: push_sign,
    Timestamp: push_timestamp,
    IdPayload: push_id,
    Cert: push_cert,
    Chash: push_chash,
    Verification: push_verification,
    SecurityPolicy: push_sp,
    Rand: push_rand,
    ErrorPayload: push_err,
    GeneralExtension: push_general_ext,
    KeyIdExtension: push_general_ext,
}

_DEFAULT_OPTIONS: Final = DecodeOptions()


def decode_message(data: bytes, options: DecodeOptions | None = None) -> Message:
    """Decode one MIKEY message (RFC 3830 §6) and keep its raw bytes and MAC offset.

    Returns a :class:`Message`; raises DecodeError or one of its subclasses, nothing else.
    """
    opts = options if options is not None else _DEFAULT_OPTIONS
    if len(data) > opts.max_message_size:
        raise OversizeError(
            f"message of {len(data)} bytes exceeds {opts.max_message_size}", opts.max_message_size
        )
    buf = Buffer(data)
    try:
        return _decode(buf, bytes(data), opts)
    except DecodeError:
        raise
    except Exception as exc:  # defensive: nothing but DecodeError leaves a decoder
        raise DecodeError(f"malformed message: {type(exc).__name__}", buf.offset) from exc


def _decode(buf: Buffer, raw: bytes, opts: DecodeOptions) -> Message:
    header, nxt = pull_header(buf)
    np_off = HDR_NEXT_PAYLOAD_OFFSET
    payloads: list[Any] = []
    offsets: list[int] = []
    max_payloads = opts.max_payloads
    pulls = _PULL
    no_sp = header.cs_id_map_type == CsIdMapType.EMPTY and not opts.lenient_empty_map_sp
    while nxt:  # PayloadType.LAST == 0
        start = buf.position  # == offset: the message buffer has base offset 0
        pull = pulls.get(nxt)
        if pull is None:
            where = "outside KEMAC/PKE" if nxt == PayloadType.KEY_DATA else "unknown"
            raise UnknownPayloadError(f"next payload {nxt} ({where})", np_off)
        if len(offsets) >= max_payloads:
            raise TooManyPayloadsError(f"more than {max_payloads} payloads", start)
        if no_sp and nxt == PayloadType.SP:
            # RFC 4563 §5: no Security Policy payload with the empty CS ID map
            raise InvalidValueError("SP payload with CS ID map type 1 (empty map)", start)
        np_off = start
        p, nxt = pull(buf)
        payloads.append(p)
        offsets.append(start)
    padding = 0
    rest = buf.remaining()
    if rest:
        if opts.lenient_trailing_padding and rest == 1 and buf.peek_uint8() == 0:
            padding = 1
        else:
            raise TrailingDataError(f"{rest} bytes after the last payload", buf.offset)
    end = len(raw) - padding
    mac_offset = sig_offset = None
    if payloads:
        last = payloads[-1]
        if isinstance(last, Kemac | Verification):
            mac_offset = end - len(last.mac)
        elif isinstance(last, Sign):
            sig_offset = end - len(last.signature)
    return Message(
        header=header,
        payloads=tuple(payloads),
        raw=raw,
        payload_offsets=tuple(offsets),
        mac_offset=mac_offset,
        signature_offset=sig_offset,
        padding=padding,
    )


def encode_message(
    header: Header,
    payloads: Sequence[Payload],
    *,
    without_final_mac: bool = False,
    allow_empty_map_sp: bool = False,
) -> bytes:
    """Encode HDR and payloads; next-payload bytes follow the list order (RFC 3830 §6).

    With ``without_final_mac`` the last payload (KEMAC or V) is written up to and including its
    MAC/Auth alg byte and its ``mac`` is ignored: that is the MAC input of RFC 3830 §5.2, to
    which the caller appends the computed MAC. An SP payload with the empty CS ID map is
    refused (RFC 4563 §5) unless ``allow_empty_map_sp`` (to re-encode what a lenient decoder
    accepted). Raises ConfigError for values that do not fit or break that rule.
    """
    buf = Buffer()
    n = len(payloads)
    types: list[int] = []
    for p in payloads:
        if type(p) not in _PUSH:
            raise ConfigError(f"not a MIKEY payload: {type(p).__name__}")
        types.append(p.payload_type)
    if (
        header.cs_id_map_type == CsIdMapType.EMPTY
        and PayloadType.SP in types
        and not allow_empty_map_sp
    ):
        raise ConfigError("RFC 4563 §5: no SP payload with CS ID map type 1 (empty map)")
    try:
        push_header(buf, header, types[0] if n else PayloadType.LAST)
        for i, p in enumerate(payloads):
            nxt = types[i + 1] if i + 1 < n else PayloadType.LAST
            if i + 1 == n and without_final_mac:
                if isinstance(p, Kemac):
                    push_kemac(buf, p, nxt, include_mac=False)
                elif isinstance(p, Verification):
                    push_verification(buf, p, nxt, include_mac=False)
                else:
                    raise ConfigError("without_final_mac needs a final KEMAC or V payload")
                continue
            _PUSH[type(p)](buf, p, nxt)
    except (OverflowError, ValueError) as exc:
        raise ConfigError(f"MIKEY field out of range: {exc}") from exc
    return buf.getvalue()
