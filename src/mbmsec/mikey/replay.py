"""MIKEY replay protection (RFC 3830 §5.3, §5.4, §6.6), sans-I/O.

Theory of operation
-------------------
Time is an argument: ``now`` is float seconds since the Unix epoch, supplied by the caller.
NTP / NTP-UTC timestamps of the T payload (RFC 3830 §6.6: 64-bit NTP format, seconds since
1900 in the upper 32 bits, binary fraction in the lower 32) convert with :func:`ntp_to_unix` and
:func:`unix_to_ntp` (RFC 5905 §6; era ambiguity after 2036 resolved as in RFC 4330 §3 or,
better, by the era closest to a reference time).

**Timestamps (ReplayGuard).** RFC 3830 §5.4: "Each Responder utilizes a replay cache in order
to remember the successfully authenticated messages presented within an allowable clock skew
(which is set by the local policy)". The rules here, in the RFC's recommended order (§5.3):

1. A timestamp ``ts`` is inside the window when ``now - max_skew <= ts <= now + max_skew``
   (both edges accepted); else :class:`TimestampOutOfWindowError` (Error no 1).
2. A message whose identity is in the cache is :class:`ReplayedMessageError`.
3. The cache holds only messages whose MAC verified: :meth:`ReplayGuard.check` before the MAC
   check, :meth:`ReplayGuard.commit` after it (§5.3 "add to replay cache").
4. An entry may be forgotten once its timestamp left the window (``ts < now - max_skew``): such a
   message is rejected by rule 1 anyway.
5. The cache is bounded (``max_entries``). When it is full of live entries, the entry with the
   oldest timestamp is forgotten early and the guard raises its **floor** to that timestamp.
   Every message with ``ts <= floor`` is then refused with :class:`FreshnessUnknownError` (a
   ReplayedMessageError): it cannot be proven fresh, because a message with that timestamp may
   have been forgotten. This is the RFC's "If the host loses track of the incoming requests ...
   it rejects all incoming requests until the clock skew interval has passed", narrowed to the
   timestamps actually at risk. Purging (rule 4) raises the floor too, so a clock that steps
   backwards cannot make a forgotten message acceptable again.

The message identity is chosen by the caller; the MAC field of the verified message is the
natural choice (20 bytes, unique per authenticated message, already computed). Default skew:
300 s (RFC 3830 gives no number: "local policy", §5.4 speaks of minutes to hours; 300 s is the
common Kerberos-style choice). Initiators (the BM-SC pushing MSK/MTK messages) need no cache
(§5.4): they accept only answers to messages they sent.

**COUNTER (CounterState).** RFC 3830 §6.6 defines a 32-bit COUNTER timestamp; TS 33.246 uses it
per key (per MUK for MSK messages, per MSK for MTK messages; TS 31.102 stores a "Time Stamp
Counter" per key). A receiver accepts a COUNTER only if it is strictly greater than the last one
accepted for that key; the first message for a key is accepted whatever its value. The counter
never wraps: after 0xFFFFFFFF nothing more is accepted under that key, and a sender that reached
it must switch to a new key (:class:`CounterExhaustedError`). ``check`` / ``commit`` are split so
that the state advances only after the MAC verified.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Final

from ..errors import (
    ConfigError,
    CounterExhaustedError,
    CounterNotIncreasingError,
    FreshnessUnknownError,
    ReplayedMessageError,
    TimestampOutOfWindowError,
)

# Seconds from 1900-01-01 (NTP prime epoch) to 1970-01-01 (Unix epoch), RFC 5905 Figure 4.
NTP_UNIX_OFFSET: Final = 2_208_988_800
NTP_ERA_SECONDS: Final = 1 << 32
COUNTER_MAX: Final = 0xFFFFFFFF  # RFC 3830 §6.6: COUNTER is 32 bits

DEFAULT_MAX_SKEW: Final = 300.0
DEFAULT_MAX_ENTRIES: Final = 65_536


# --- NTP time (RFC 5905 §6) ------------------------------------------------------------------


def unix_to_ntp(t: float) -> int:
    """Return the 64-bit NTP timestamp (RFC 5905 §6: 32-bit seconds, 32-bit fraction) of Unix
    time ``t``. Seconds are taken modulo 2^32 (NTP eras); raises ConfigError before 1900."""
    if not math.isfinite(t):
        raise ConfigError("time must be finite")
    whole = math.floor(t)
    frac = round((t - whole) * NTP_ERA_SECONDS)
    if frac >= NTP_ERA_SECONDS:  # rounding carried into the seconds
        whole += 1
        frac -= NTP_ERA_SECONDS
    secs = whole + NTP_UNIX_OFFSET
    if secs < 0:
        raise ConfigError("time before 1900 has no NTP timestamp")
    return ((secs % NTP_ERA_SECONDS) << 32) | frac


def ntp_to_unix(ntp: int, near: float | None = None) -> float:
    """Return Unix time for a 64-bit NTP timestamp.

    The 32-bit seconds field is ambiguous across eras. With ``near`` (e.g. ``now``) the era that
    puts the result closest to ``near`` is chosen; without it, RFC 4330 §3: seconds with the top
    bit set are era 0 (1968-2036), others era 1 (2036-2104). Raises ConfigError when ``ntp``
    does not fit 64 bits.
    """
    if not 0 <= ntp <= 0xFFFFFFFFFFFFFFFF:
        raise ConfigError("NTP timestamp must fit 64 bits")
    secs = ntp >> 32
    frac = (ntp & 0xFFFFFFFF) / NTP_ERA_SECONDS
    if near is None:
        era = 0 if secs & 0x80000000 else 1
    else:
        era = round((near + NTP_UNIX_OFFSET - secs) / NTP_ERA_SECONDS)
    return secs + era * NTP_ERA_SECONDS - NTP_UNIX_OFFSET + frac


# --- timestamp window and replay cache (RFC 3830 §5.4) ---------------------------------------


@dataclass(frozen=True)
class ReplayConfig:
    """Local replay policy: the allowed clock skew in seconds and the replay cache bound."""

    max_skew: float = DEFAULT_MAX_SKEW
    max_entries: int = DEFAULT_MAX_ENTRIES

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_skew) and self.max_skew > 0):
            raise ConfigError("max_skew must be a positive number of seconds")
        if self.max_entries < 1:
            raise ConfigError("max_entries must be at least 1")


class ReplayGuard:
    """Clock-skew window plus a bounded replay cache for NTP-timestamped messages
    (RFC 3830 §5.4). See the module docstring for the exact rules."""

    __slots__ = ("_entries", "_floor", "_heap", "config")

    def __init__(self, config: ReplayConfig | None = None) -> None:
        self.config = config or ReplayConfig()
        self._entries: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._floor = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ReplayGuard(entries={len(self._entries)}, floor={self._floor})"

    @property
    def floor(self) -> float:
        """Messages with a timestamp at or below this value cannot be proven fresh."""
        return self._floor

    def check_window(self, timestamp: float, now: float) -> None:
        """Raise TimestampOutOfWindowError unless ``|timestamp - now| <= max_skew``."""
        skew = self.config.max_skew
        if not now - skew <= timestamp <= now + skew:
            raise TimestampOutOfWindowError(
                f"timestamp {timestamp - now:+.3f} s from local time, allowed +-{skew:g} s"
            )

    def _forget(self, limit: float | None) -> None:
        # Drop the oldest entry (limit None) or every entry with ts < limit; raise the floor.
        heap = self._heap
        while heap and (limit is None or heap[0][0] < limit):
            ts, ident = heapq.heappop(heap)
            del self._entries[ident]
            self._floor = max(self._floor, ts)
            if limit is None:
                return

    def check(self, identity: bytes, timestamp: float, now: float) -> None:
        """Check a message before its MAC is verified; changes nothing but expired entries.

        Raises TimestampOutOfWindowError, FreshnessUnknownError (timestamp at or below the
        floor) or ReplayedMessageError (identity already in the cache).
        """
        self._forget(now - self.config.max_skew)
        self.check_window(timestamp, now)
        if timestamp <= self._floor:
            raise FreshnessUnknownError(
                "timestamp not newer than entries the replay cache had to forget"
            )
        if identity in self._entries:
            raise ReplayedMessageError("message already received within the replay window")

    def commit(self, identity: bytes, timestamp: float, now: float) -> None:
        """Remember a message whose MAC verified (RFC 3830 §5.3). Runs :meth:`check` first and
        raises as it does; when the cache is full, forgets the oldest entry (rule 5)."""
        self.check(identity, timestamp, now)
        self._entries[identity] = timestamp
        heapq.heappush(self._heap, (timestamp, identity))
        if len(self._entries) > self.config.max_entries:
            self._forget(None)

    def accept(self, identity: bytes, timestamp: float, now: float) -> None:
        """check + commit in one step, for a message that is already authenticated."""
        self.commit(identity, timestamp, now)


# --- COUNTER per key (RFC 3830 §6.6, TS 33.246) ----------------------------------------------


def _check_range(counter: int) -> None:
    if not 0 <= counter <= COUNTER_MAX:
        raise ConfigError("COUNTER must fit 32 bits")


class CounterState:
    """The COUNTER state of one key relationship (a MUK, an MSK).

    Receiver side: :meth:`check` then, after the MAC verified, :meth:`commit`. Sender side:
    :meth:`next` returns the next value to send. ``last`` is the last accepted / sent value,
    ``None`` before the first message.
    """

    __slots__ = ("last",)

    def __init__(self, last: int | None = None) -> None:
        if last is not None:
            _check_range(last)
        self.last = last

    def __repr__(self) -> str:
        return f"CounterState(last={self.last})"

    def check(self, counter: int) -> None:
        """Raise CounterNotIncreasingError unless ``counter`` > the last accepted value."""
        _check_range(counter)
        if self.last is not None and counter <= self.last:
            raise CounterNotIncreasingError(
                f"COUNTER {counter} not greater than last accepted {self.last}"
            )

    def commit(self, counter: int) -> None:
        """Accept ``counter`` (after the MAC verified). Raises as :meth:`check` does."""
        self.check(counter)
        self.last = counter

    def next(self) -> int:
        """Sender side: advance and return the next COUNTER (1 for a fresh key). Raises
        CounterExhaustedError at 0xFFFFFFFF: the COUNTER never wraps, replace the key."""
        if self.last is None:
            value = 1
        elif self.last >= COUNTER_MAX:
            raise CounterExhaustedError("COUNTER space of this key is used up; replace the key")
        else:
            value = self.last + 1
        self.last = value
        return value
