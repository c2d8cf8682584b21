"""Retry policy: spread, exponential back-off with cap, jitter, validation (ue/retry.py)."""

from __future__ import annotations

import random

import pytest

from mbmsec.errors import ConfigError
from mbmsec.ue.retry import RetryPolicy, uniform


def _rng(seed: int):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def test_uniform_bounds_and_extremes() -> None:
    assert uniform(lambda n: bytes(n), 2.0, 5.0) == 2.0
    top = uniform(lambda n: b"\xff" * n, 2.0, 5.0)
    assert 4.999999 < top < 5.0
    assert uniform(_rng(1), 3.0, 3.0) == 3.0
    rng = _rng(2)
    values = [uniform(rng, -1.0, 1.0) for _ in range(2000)]
    assert all(-1.0 <= v < 1.0 for v in values)
    assert min(values) < -0.9 and max(values) > 0.9  # spread over the whole range


def test_intervals_double_then_cap_without_jitter() -> None:
    p = RetryPolicy(first_timeout=1.0, backoff_factor=2.0, max_interval=5.0, jitter_ratio=0.0)
    rng = _rng(3)
    assert [p.interval(a, rng) for a in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert p.interval(10_000, rng) == 5.0


def test_jitter_stays_within_ratio_and_is_reproducible() -> None:
    p = RetryPolicy(first_timeout=2.0, jitter_ratio=0.5, max_interval=100.0)
    a = [p.interval(1, _rng(9)) for _ in range(3)]
    assert a[0] == a[1] == a[2]  # same seed, same draw
    rng = _rng(4)
    draws = [p.interval(1, rng) for _ in range(500)]
    assert all(1.0 <= d < 3.0 for d in draws)
    assert len(set(draws)) > 400
    spread = [p.first_delay(rng) for _ in range(500)]
    assert all(0 <= s < p.spread for s in spread)


def test_worst_case_cycle_bounds_attempts() -> None:
    p = RetryPolicy(
        spread=1.0, first_timeout=1.0, max_interval=4.0, jitter_ratio=0.5, max_attempts=4
    )
    # 1 + 1.5 * (1 + 2 + 4 + 4)
    assert p.worst_case_cycle() == pytest.approx(17.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_timeout": 0.0},
        {"first_timeout": 10.0, "max_interval": 5.0},
        {"backoff_factor": 0.5},
        {"jitter_ratio": 1.0},
        {"max_attempts": 0},
        {"spread": -1.0},
        {"cooldown": float("inf")},
    ],
)
def test_invalid_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        RetryPolicy().interval(0, _rng(1))
