"""Tests for mbmsec.mikey.replay: NTP conversion, skew window, replay cache, COUNTER state."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbmsec.errors import (
    ConfigError,
    CounterExhaustedError,
    CounterNotIncreasingError,
    FreshnessUnknownError,
    ReplayedMessageError,
    ReplayError,
    TimestampOutOfWindowError,
)
from mbmsec.mikey.replay import (
    COUNTER_MAX,
    NTP_UNIX_OFFSET,
    CounterState,
    ReplayConfig,
    ReplayGuard,
    ntp_to_unix,
    unix_to_ntp,
)

NOW = 1_700_000_000.0


# --- NTP ---------------------------------------------------------------------------------------


def test_ntp_epoch_offset() -> None:
    # RFC 5905 Figure 4: 1970-01-01 is NTP second 2,208,988,800.
    assert unix_to_ntp(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_to_unix(NTP_UNIX_OFFSET << 32) == 0.0
    assert (
        calendar.timegm((1970, 1, 1, 0, 0, 0)) - calendar.timegm((1900, 1, 1, 0, 0, 0))
        == NTP_UNIX_OFFSET
    )


def test_ntp_fraction() -> None:
    ntp = unix_to_ntp(1.5)
    assert ntp & 0xFFFFFFFF == 0x80000000
    assert ntp >> 32 == NTP_UNIX_OFFSET + 1
    assert ntp_to_unix(ntp) == 1.5
    # a fraction that rounds up to a whole second carries into the seconds field
    assert unix_to_ntp(1.9999999999999) == (NTP_UNIX_OFFSET + 2) << 32


def test_ntp_era_rollover_2036() -> None:
    # 2036-02-07 06:28:16 UTC is NTP second 2^32, i.e. era 1 second 0.
    t2036 = calendar.timegm((2036, 2, 7, 6, 28, 16))
    assert unix_to_ntp(float(t2036)) == 0
    assert ntp_to_unix(0) == t2036  # RFC 4330 §3: top bit clear -> era 1
    assert ntp_to_unix(0, near=t2036 - 10.0) == t2036
    # with a reference time the era closest to it wins, even for era 0 values
    assert ntp_to_unix(unix_to_ntp(NOW), near=NOW) == NOW


@given(st.floats(min_value=-NTP_UNIX_OFFSET + 1, max_value=4.0e9, allow_nan=False))
def test_ntp_round_trip_near(t: float) -> None:
    back = ntp_to_unix(unix_to_ntp(t), near=t)
    assert abs(back - t) <= 2**-31 + abs(t) * 2**-52


@pytest.mark.parametrize("bad", [-(2**64), -1, 1 << 64])
def test_ntp_to_unix_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ConfigError):
        ntp_to_unix(bad)


@pytest.mark.parametrize("bad", [-NTP_UNIX_OFFSET - 1.0, float("inf"), float("nan")])
def test_unix_to_ntp_rejects(bad: float) -> None:
    with pytest.raises(ConfigError):
        unix_to_ntp(bad)


# --- window --------------------------------------------------------------------------------------


def test_window_edges_inclusive() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=300.0))
    g.check(b"a", NOW - 300.0, NOW)
    g.check(b"a", NOW + 300.0, NOW)
    for ts in (NOW - 300.001, NOW + 300.001):
        with pytest.raises(TimestampOutOfWindowError) as exc:
            g.check(b"a", ts, NOW)
        assert exc.value.mikey_error == 1  # RFC 3830 §6.12 Invalid timestamp
        assert isinstance(exc.value, ReplayError)


def test_config_validation() -> None:
    for kwargs in ({"max_skew": 0.0}, {"max_skew": -1.0}, {"max_skew": float("nan")}):
        with pytest.raises(ConfigError):
            ReplayConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ReplayConfig(max_entries=0)


# --- replay cache ---------------------------------------------------------------------------


def test_check_does_not_remember_commit_does() -> None:
    g = ReplayGuard()
    g.check(b"mac1", NOW, NOW)
    g.check(b"mac1", NOW, NOW)  # unverified messages leave no trace
    assert len(g) == 0
    g.commit(b"mac1", NOW, NOW)
    assert len(g) == 1
    with pytest.raises(ReplayedMessageError):
        g.check(b"mac1", NOW, NOW + 1)
    with pytest.raises(ReplayedMessageError):
        g.commit(b"mac1", NOW, NOW + 1)
    g.accept(b"mac2", NOW, NOW + 1)
    assert len(g) == 2


def test_replay_rejected_until_out_of_window() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=10.0))
    g.commit(b"m", NOW, NOW)
    # still inside the window exactly at the edge: remembered
    with pytest.raises(ReplayedMessageError):
        g.check(b"m", NOW, NOW + 10.0)
    # one step later the timestamp itself is out of the window
    with pytest.raises(TimestampOutOfWindowError):
        g.check(b"m", NOW, NOW + 10.001)
    assert len(g) == 0  # purged


def test_cache_full_forgets_oldest_and_raises_floor() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=100.0, max_entries=3))
    for i in range(3):
        g.commit(bytes([i]), NOW + i, NOW)
    assert len(g) == 3 and g.floor == float("-inf")
    g.commit(b"new", NOW + 10, NOW)  # forces the oldest (ts NOW) out
    assert len(g) == 3
    assert g.floor == NOW
    # the forgotten message is not accepted again: it cannot be proven fresh
    with pytest.raises(FreshnessUnknownError):
        g.check(bytes([0]), NOW, NOW)
    # neither is any other message at or below the floor
    with pytest.raises(FreshnessUnknownError) as exc:
        g.check(b"other", NOW - 50, NOW)
    assert isinstance(exc.value, ReplayedMessageError)
    # newer messages still pass; remembered ones are still replays
    g.check(b"other", NOW + 0.5, NOW)
    with pytest.raises(ReplayedMessageError):
        g.check(bytes([1]), NOW + 1, NOW)


def test_cache_full_new_message_older_than_all() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=100.0, max_entries=2))
    g.commit(b"a", NOW + 5, NOW)
    g.commit(b"b", NOW + 6, NOW)
    g.commit(b"c", NOW + 1, NOW)  # the new entry is itself the oldest: forgotten at once
    assert g.floor == NOW + 1 and len(g) == 2
    with pytest.raises(FreshnessUnknownError):
        g.check(b"c", NOW + 1, NOW)


def test_cache_bound_holds_under_load() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=1000.0, max_entries=50))
    seen = []
    for i in range(500):
        ident = i.to_bytes(4, "big")
        g.commit(ident, NOW + i * 0.01, NOW)
        seen.append((ident, NOW + i * 0.01))
        assert len(g) <= 50
    # no message ever committed is accepted again
    for ident, ts in seen:
        with pytest.raises(ReplayedMessageError):
            g.check(ident, ts, NOW)


def test_clock_stepping_back_does_not_revive_purged_entries() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=10.0))
    g.commit(b"m", NOW, NOW)
    g.check(b"x", NOW + 20, NOW + 20)  # purges b"m"
    assert len(g) == 0
    with pytest.raises(FreshnessUnknownError):
        g.check(b"m", NOW, NOW + 5)  # clock went back 15 s


def test_expired_entries_are_purged() -> None:
    g = ReplayGuard(ReplayConfig(max_skew=10.0))
    for i in range(5):
        g.commit(bytes([i]), NOW + i, NOW + i)
    g.check(b"z", NOW + 30, NOW + 30)
    assert len(g) == 0
    assert "ReplayGuard(" in repr(g)


# --- COUNTER ------------------------------------------------------------------------------


def test_counter_strictly_increasing() -> None:
    c = CounterState()
    c.check(0)
    c.commit(5)
    with pytest.raises(CounterNotIncreasingError) as exc:
        c.check(5)
    assert exc.value.mikey_error == 1
    with pytest.raises(CounterNotIncreasingError):
        c.commit(4)
    assert c.last == 5
    c.check(6)
    assert c.last == 5  # check alone does not advance
    c.commit(1000)
    assert c.last == 1000


def test_counter_does_not_wrap() -> None:
    c = CounterState(COUNTER_MAX - 1)
    c.commit(COUNTER_MAX)
    for v in (0, 1, COUNTER_MAX):
        with pytest.raises(CounterNotIncreasingError):
            c.check(v)


def test_counter_range() -> None:
    c = CounterState()
    for bad in (-1, COUNTER_MAX + 1):
        with pytest.raises(ConfigError):
            c.check(bad)
    with pytest.raises(ConfigError):
        CounterState(COUNTER_MAX + 1)


def test_sender_counter() -> None:
    c = CounterState()
    assert [c.next(), c.next(), c.next()] == [1, 2, 3]
    s = CounterState(COUNTER_MAX - 1)
    assert s.next() == COUNTER_MAX
    with pytest.raises(CounterExhaustedError):
        s.next()
    assert s.last == COUNTER_MAX
    assert repr(s) == f"CounterState(last={COUNTER_MAX})"


@given(st.lists(st.integers(min_value=0, max_value=COUNTER_MAX), max_size=40))
def test_counter_accepts_exactly_strict_records(values: list[int]) -> None:
    c = CounterState()
    best: int | None = None
    for v in values:
        if best is None or v > best:
            c.commit(v)
            best = v
        else:
            with pytest.raises(CounterNotIncreasingError):
                c.commit(v)
        assert c.last == best
