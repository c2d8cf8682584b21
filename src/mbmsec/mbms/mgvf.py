"""MGV-F: the UE's MBMS key Generation and Validation Function (TS 33.246 §6.5), pure.

Rules applied before an MTK is released (checks are cheap first; nothing changes unless all
pass, and the caller persists the returned state before using the key):

1. MTK ID rule: ``MTK ID > current MTK ID`` of that MSK (any MTK ID for the first one), and
   ``first <= MTK ID <= last`` of the MSK's key validity (the Interval of its key data).
2. COUNTER rule: the MTK message COUNTER is greater than the last accepted for that MSK
   (RFC 3830 §6.6; per-MSK Time Stamp Counter of TS 31.102 §4.2.80).
3. MAC rule: the KEMAC MAC verifies under the MSK-derived auth_key (RFC 3830 §4.1.4), checked
   on the received bytes in constant time before decryption.

Failures raise (ReplayError family for 1-2, AuthError for 3); the UE drops the message
silently (no MIKEY Error over broadcast). For MSK messages under a MUK the COUNTER rule is the
same, per MUK (:func:`check_msk_counter`); the compact profile's responses use the T echo rule
instead (:mod:`mbmsec.mbms.compact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import CounterNotIncreasingError, InvalidValueError, ReplayError
from ..mikey.codec import Message
from ..mikey.constants import TsType
from ..mikey.payloads import Timestamp
from ..mikey.protect import Psk
from .keys import MskRef
from .messages import MskKey, MtkKey, check_mtk_message, peek_key_ref

__all__ = [
    "MskState",
    "MtkIdNotIncreasingError",
    "MtkIdOutOfRangeError",
    "check_msk_counter",
    "mgvf_mtk",
]


class MtkIdNotIncreasingError(ReplayError):
    """The MTK ID is not greater than the MSK's current MTK ID (TS 33.246 §6.5)."""


class MtkIdOutOfRangeError(ReplayError):
    """The MTK ID lies outside the MSK's key validity range (TS 33.246 §6.5)."""


@dataclass(frozen=True, slots=True)
class MskState:
    """The MGV-F's state for one MSK: key, validity range, last COUNTER, current MTK ID.

    ``psk`` may hold a precomputed :class:`~mbmsec.mikey.prf.Prf` of the MSK (a cache);
    otherwise the raw key is used.
    """

    msk: MskKey
    last_counter: int | None = None
    current_mtk_id: int | None = None
    psk: Psk | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> MskRef:
        return self.msk.ref


def mgvf_mtk(data: bytes | Message, state: MskState) -> tuple[MtkKey, MskState]:
    """Apply the MGV-F rules to an MTK message for the MSK of ``state``.

    Returns the released MTK and the new state (store it before using the MTK). Raises
    InvalidValueError when the message names another MSK, MtkIdNotIncreasingError,
    MtkIdOutOfRangeError, CounterNotIncreasingError, AuthError, DecodeError.
    """
    msg, ref = peek_key_ref(data)
    if ref.key_domain_id != state.ref.key_domain_id or ref.msk_id != state.ref.msk_id:
        raise InvalidValueError("MTK message names another MSK")
    mtk_id = ref.mtk_id
    if mtk_id is None:
        raise InvalidValueError("MTK message without MTK ID")
    _check_mtk_id(mtk_id, state)
    t = msg.find(Timestamp)
    if t is None or t.ts_type != TsType.COUNTER:
        raise InvalidValueError("MTK message T must be a COUNTER")
    _check_counter(t.value, state.last_counter)
    psk = state.psk if state.psk is not None else state.msk.key
    checked = check_mtk_message(msg, psk)
    new = replace(state, last_counter=checked.counter, current_mtk_id=checked.mtk.mtk_id)
    return checked.mtk, new


def _check_mtk_id(mtk_id: int, state: MskState) -> None:
    if not state.msk.mtk_id_first <= mtk_id <= state.msk.mtk_id_last:
        raise MtkIdOutOfRangeError(
            f"MTK ID {mtk_id} outside MSK validity "
            f"[{state.msk.mtk_id_first}, {state.msk.mtk_id_last}]"
        )
    if state.current_mtk_id is not None and mtk_id <= state.current_mtk_id:
        raise MtkIdNotIncreasingError(
            f"MTK ID {mtk_id} not greater than current {state.current_mtk_id}"
        )


def _check_counter(counter: int, last: int | None) -> None:
    if last is not None and counter <= last:
        raise CounterNotIncreasingError(f"COUNTER {counter} not greater than last {last}")


def check_msk_counter(timestamp: Timestamp, last_counter: int | None) -> int:
    """The per-MUK COUNTER rule for a 3GPP-profile MSK message (TS 33.246 §6.4).

    Returns the COUNTER to record once the message verified; raises InvalidValueError when T
    is not a COUNTER and CounterNotIncreasingError when it is not greater than the last.
    """
    if timestamp.ts_type != TsType.COUNTER:
        raise InvalidValueError("MSK message pushed under a MUK must carry a COUNTER")
    _check_counter(timestamp.value, last_counter)
    return timestamp.value
