"""Retry, jitter and back-off policy of the UE key client, sans-I/O.

Many UEs react to the same trigger at the same instant (an MTK message on the multicast group
naming a new MSK, a common expiry time). TS 33.246 §6.3.2.2.3 (missed key update) leaves the
timing to the UE; we spread the requests: the first one goes out at a uniformly random instant
in ``[0, spread)`` after the trigger, each retransmission after an interval that doubles from
``first_timeout`` up to ``max_interval`` (each interval itself jittered by +-``jitter_ratio``),
and after ``max_attempts`` the request gives up (reported as an event). A given-up request
starts again on the next trigger, or by itself after ``cooldown`` seconds, so a UE that was
unreachable for a while catches up once it is back.

Randomness is injected (``rng(n) -> n bytes``) so a simulation replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError

Rng = Callable[[int], bytes]


def uniform(rng: Rng, low: float, high: float) -> float:
    """Return a number in ``[low, high)`` drawn from 53 random bits of ``rng``."""
    if high <= low:
        return low
    bits = int.from_bytes(rng(8), "big") >> 11  # 53 bits, as random.random()
    value = low + (high - low) * (bits / float(1 << 53))
    return value if value < high else math.nextafter(high, low)


@dataclass(frozen=True)
class RetryPolicy:
    """Timing of key requests. All values are seconds except ``max_attempts``.

    ``spread``: window of the random delay before the first attempt after a trigger.
    ``first_timeout``: wait for an answer after the first attempt.
    ``backoff_factor`` / ``max_interval``: growth and cap of the wait between attempts.
    ``jitter_ratio``: each wait is multiplied by a random factor in ``[1 - r, 1 + r)``.
    ``max_attempts``: attempts before giving up. ``cooldown``: pause after a give-up before a
    fresh cycle starts on its own. ``lead_time``: how long before a key expires the UE asks for
    its successor. ``retry_later``: wait after an error cause that says "try again later"
    (BSF unreachable, key not yet in place), before back-off is applied.
    """

    spread: float = 2.0
    first_timeout: float = 1.0
    backoff_factor: float = 2.0
    max_interval: float = 8.0
    jitter_ratio: float = 0.25
    max_attempts: int = 10
    cooldown: float = 30.0
    lead_time: float = 30.0
    retry_later: float = 2.0

    def __post_init__(self) -> None:
        values = (
            self.spread,
            self.first_timeout,
            self.max_interval,
            self.cooldown,
            self.lead_time,
            self.retry_later,
        )
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ConfigError("retry times must be finite and not negative")
        if self.first_timeout <= 0 or self.max_interval < self.first_timeout:
            raise ConfigError("need 0 < first_timeout <= max_interval")
        if self.backoff_factor < 1:
            raise ConfigError("backoff_factor must be at least 1")
        if not 0 <= self.jitter_ratio < 1:
            raise ConfigError("jitter_ratio must be in [0, 1)")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")

    def first_delay(self, rng: Rng) -> float:
        """Random delay between a trigger and the first attempt, in ``[0, spread)``."""
        return uniform(rng, 0.0, self.spread)

    def interval(self, attempt: int, rng: Rng) -> float:
        """Wait after attempt number ``attempt`` (1-based) before the next one.

        ``first_timeout * backoff_factor ** (attempt - 1)``, capped at ``max_interval``, then
        jittered by ``jitter_ratio``.
        """
        if attempt < 1:
            raise ConfigError("attempts are numbered from 1")
        base = min(
            self.max_interval, self.first_timeout * self.backoff_factor ** min(attempt - 1, 64)
        )
        r = self.jitter_ratio
        return base * uniform(rng, 1.0 - r, 1.0 + r)

    def worst_case_cycle(self) -> float:
        """Upper bound of the time from a trigger to the give-up of one cycle."""
        total = self.spread
        for attempt in range(1, self.max_attempts + 1):
            base = min(
                self.max_interval,
                self.first_timeout * self.backoff_factor ** min(attempt - 1, 64),
            )
            total += base * (1.0 + self.jitter_ratio)
        return total
