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


# --- stores and provisioning (GBA HSS / BSF) -----------------------------------------------


class DuplicateEntryError(ConfigError):
    """An entry with the same key (an IMPI, a B-TID) already exists in a store."""


class UnknownEntryError(ConfigError):
    """No entry with the given key exists in a store."""


# --- 3G AKA (TS 33.102 §6.3) and HTTP Digest (RFC 2617 / RFC 3310) --------------------------


class AkaMacError(AuthError):
    """AUTN or AUTS failed its MAC check (TS 33.102 §6.3.3 MAC failure / §6.3.5 bad MAC-S)."""


class SyncFailureError(AuthError):
    """AUTN verified but SQN is out of range (TS 33.102 §6.3.3 synchronisation failure).

    ``auts`` is the 14-byte AUTS = (SQN_MS xor AK*) || MAC-S the UE sends back for
    re-synchronisation (RFC 3310 §3.4: the ``auts`` Digest parameter).
    """

    def __init__(self, message: str, auts: bytes) -> None:
        self.auts = auts
        super().__init__(message)


class DigestParseError(DecodeError):
    """An HTTP Digest header value (RFC 2617 §3.2, RFC 7616 §3.3) is malformed or too large."""


class DigestAuthError(AuthError):
    """An HTTP Digest response or rspauth did not verify (RFC 2617 §3.2.2, §3.2.3)."""


# --- replay protection, additions (mikey/replay.py) -----------------------------------------


class FreshnessUnknownError(ReplayedMessageError):
    """The timestamp is inside the skew window but not newer than an entry the replay cache had
    to forget (cache full, or the clock stepped back), so freshness cannot be proven."""


class CounterExhaustedError(MbmsecError):
    """Local: a sender's 32-bit COUNTER reached its maximum; the key must be replaced."""

    mikey_error = None
    http_status = 500


# --- SRTP (srtp.py) --------------------------------------------------------------------------


class UnknownMkiError(KeyUnavailableError):
    """An SRTP packet's MKI (MSK ID || MTK ID, TS 33.246 §6.6.2) names no installed key."""

    def __init__(self, msk_id: int, mtk_id: int) -> None:
        self.msk_id = msk_id
        self.mtk_id = mtk_id
        super().__init__(f"no SRTP key for MKI msk_id={msk_id:08x} mtk_id={mtk_id}")


# --- BM-SC key management (bmsc/, mbms/) -----------------------------------------------------


class BtidUnknownError(KeyUnavailableError):
    """Zn: the B-TID is unknown to the BSF or expired; the UE must bootstrap again
    (TS 24.109 §5.2.4). Compact profile: private Error no 241, HTTP: 401."""

    mikey_error = 241
    http_status = 401


class BsfUnreachableError(KeyUnavailableError):
    """Zn: the BSF (or HSS behind it) cannot be reached or the lookup is still pending; the NAF
    key is not in place yet. Compact profile: private Error no 242, HTTP: 503."""

    mikey_error = 242
    http_status = 503


class ServiceUnknownError(KeyUnavailableError):
    """No such MBMS user service, Key Domain or key group (private Error no 243, HTTP 404)."""

    mikey_error = 243
    http_status = 404


class NotAuthorizedError(MbmsecError):
    """The user may not receive this service's keys (private Error no 244, HTTP 403)."""

    mikey_error = 244
    http_status = 403


# --- HSS (gba/hss.py) ------------------------------------------------------------------------


class SqnExhaustedError(MbmsecError):
    """HSS: SQN_HE cannot advance any more (SEQ at its 43-bit maximum, TS 33.102 Annex C.1), so
    no fresh authentication vector can be made; the subscription needs a new K. HTTP 403."""

    mikey_error = None
    http_status = 403
