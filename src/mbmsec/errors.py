"""One error family for mbmsec.

Every error derives from :class:`MbmsecError`. Each class carries the code it maps to on the
wire: ``mikey_error`` (RFC 3830 §6.12 Error no, or ``None`` when no MIKEY Error message should be
sent) and ``http_status``. Messages never contain key bytes.

Local errors (API misuse) and remote errors (a peer broke the protocol) are kept apart, as in h2:
decode, authentication and replay errors are remote; :class:`ConfigError` is local.
"""

from __future__ import annotations

from typing import ClassVar


class MbmsecError(Exception):
    """Root of every error raised by mbmsec."""

    mikey_error: ClassVar[int | None] = 12  # RFC 3830 §6.12: Unspecified error
    http_status: ClassVar[int] = 500


# --- wire decoding ---------------------------------------------------------------------------


class DecodeError(MbmsecError):
    """Input bytes do not form a valid message. ``offset`` is the byte offset of the fault."""

    mikey_error = 12
    http_status = 400

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.reason = message
        self.offset = offset
        super().__init__(message if offset is None else f"{message} at offset {offset}")


class TruncatedError(DecodeError):
    """The input ended before a field was complete."""


class TrailingDataError(DecodeError):
    """Bytes remain after the last payload or after a length-delimited region."""


class UnsupportedVersionError(DecodeError):
    """The MIKEY version byte is not 1."""


class UnknownPayloadError(DecodeError):
    """A next-payload value names no payload type known to the decoder."""


class BadLengthError(DecodeError):
    """A length field is inconsistent with the payload or the algorithm."""


class InvalidValueError(DecodeError):
    """A field holds a value outside its code-point table or allowed range."""


class TooManyPayloadsError(DecodeError):
    """The message carries more payloads than the configured limit."""


class OversizeError(DecodeError):
    """The message is larger than the configured limit."""


# --- authentication and crypto ---------------------------------------------------------------


class AuthError(MbmsecError):
    """A MAC or signature did not verify (RFC 3830 Error no 0: Authentication failure)."""

    mikey_error = 0
    http_status = 401


class DecryptError(AuthError):
    """Decrypted key data does not parse or unwrap (AES-KW integrity check failed)."""


class UnsupportedAlgorithmError(MbmsecError):
    """An algorithm code point is known but not supported here."""

    mikey_error = 12
    http_status = 400


class PrfNotSupportedError(UnsupportedAlgorithmError):
    mikey_error = 2


class MacNotSupportedError(UnsupportedAlgorithmError):
    mikey_error = 3


class EncryptionNotSupportedError(UnsupportedAlgorithmError):
    mikey_error = 4


class DataTypeNotSupportedError(UnsupportedAlgorithmError):
    mikey_error = 11


# --- replay protection (RFC 3830 §5.4) ------------------------------------------------------


class ReplayError(MbmsecError):
    """A message failed replay protection (RFC 3830 Error no 1: Invalid timestamp)."""

    mikey_error = 1
    http_status = 400


class TimestampOutOfWindowError(ReplayError):
    """An NTP timestamp lies outside the allowed clock skew."""


class CounterNotIncreasingError(ReplayError):
    """A COUNTER timestamp is not greater than the last accepted one for its key."""


class ReplayedMessageError(ReplayError):
    """The message was already received within the replay window."""


# --- keys, services and peers ---------------------------------------------------------------


class KeyUnavailableError(MbmsecError):
    """The requested key does not exist or is not available (yet / any more)."""

    mikey_error = 12
    http_status = 404


class ConfigError(MbmsecError):
    """Local misuse: bad configuration or argument."""

    mikey_error = None
    http_status = 500
