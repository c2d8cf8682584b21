"""The UE request supervision machine: table, timing, give-up and cool-down (ue/machine.py)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.errors import ConfigError
from mbmsec.ue.machine import TRANSITIONS, Action, RequestMachine, RInput, RState
from mbmsec.ue.retry import RetryPolicy

POLICY = RetryPolicy(
    spread=2.0,
    first_timeout=1.0,
    backoff_factor=2.0,
    max_interval=8.0,
    jitter_ratio=0.0,
    max_attempts=3,
    cooldown=50.0,
    retry_later=3.0,
)


def _rng(seed: int = 1):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def test_table_covers_satisfied_and_trigger_everywhere() -> None:
    for state in RState:
        if state is RState.ERROR:
            continue
        assert (state, RInput.SATISFIED) in TRANSITIONS
        assert (state, RInput.TRIGGER) in TRANSITIONS
        assert TRANSITIONS[(state, RInput.SATISFIED)][1] is RState.IDLE
    assert not any(s is RState.ERROR for s, _ in TRANSITIONS)


def test_happy_path_timing() -> None:
    m = RequestMachine(POLICY, _rng())
    step = m.feed(RInput.TRIGGER, 100.0)
    assert (step.action, step.state) == (Action.SCHEDULE, RState.SCHEDULED)
    assert m.deadline is not None and 100.0 <= m.deadline < 102.0
    assert m.on_timer(m.deadline - 0.001, have_keys=True) is None  # not yet
    step = m.on_timer(m.deadline, have_keys=True)
    assert step is not None and step.action is Action.SEND and step.attempt == 1
    t = m.deadline
    assert t is not None
    step = m.feed(RInput.SATISFIED, t - 0.5)
    assert (step.action, step.state, m.deadline, m.attempt) == (
        Action.FINISH,
        RState.IDLE,
        None,
        0,
    )


def test_backoff_doubles_then_gives_up_then_cools_down() -> None:
    m = RequestMachine(POLICY, _rng())
    m.feed(RInput.TRIGGER, 0.0)
    assert m.deadline is not None
    now = m.deadline
    sends = []
    while True:
        step = m.on_timer(now, have_keys=True)
        assert step is not None
        if step.action is Action.GIVE_UP:
            break
        assert step.action is Action.SEND
        assert m.deadline is not None
        sends.append(m.deadline - now)
        now = m.deadline
    assert sends == pytest.approx([1.0, 2.0, 4.0])  # max_attempts = 3 attempts, doubling, no jitter
    assert m.state is RState.GAVE_UP and m.deadline == now + POLICY.cooldown
    # the cooldown ends with a fresh cycle
    step = m.on_timer(now + POLICY.cooldown, have_keys=True)
    assert step is not None and (step.action, step.state) == (Action.SCHEDULE, RState.SCHEDULED)
    assert m.attempt == 0


def test_trigger_after_give_up_restarts_at_once() -> None:
    m = RequestMachine(POLICY, _rng())
    m.feed(RInput.TRIGGER, 0.0)
    m.feed(RInput.TIMER, 1.0)
    m.feed(RInput.ERROR_FATAL, 1.1)
    assert m.state is RState.GAVE_UP
    step = m.feed(RInput.TRIGGER, 2.0)
    assert step.state is RState.SCHEDULED and m.deadline is not None and m.deadline < 4.0


def test_error_retry_respects_retry_later_and_retry_after() -> None:
    m = RequestMachine(POLICY, _rng())
    m.feed(RInput.TRIGGER, 0.0)
    m.feed(RInput.TIMER, 1.0)
    m.feed(RInput.ERROR_RETRY, 1.2)
    assert m.state is RState.BACKOFF and m.deadline == pytest.approx(1.2 + 3.0)
    m.feed(RInput.TIMER, 4.2)
    m.feed(RInput.ERROR_RETRY, 4.3, retry_after=20.0)
    assert m.deadline == pytest.approx(24.3)


def test_no_keys_waits_for_bootstrap_then_sends_now() -> None:
    m = RequestMachine(POLICY, _rng())
    m.feed(RInput.TRIGGER, 0.0)
    assert m.deadline is not None
    step = m.on_timer(m.deadline, have_keys=False)
    assert step is not None and step.action is Action.NEED_BOOTSTRAP
    assert m.state is RState.WAIT_BOOTSTRAP and m.deadline is None
    step = m.feed(RInput.BOOTSTRAPPED, 30.0)
    assert step.action is Action.SEND_NOW and m.state is RState.IN_FLIGHT and m.attempt == 1
    step = m.feed(RInput.ERROR_BOOTSTRAP, 30.5)
    assert step.action is Action.NEED_BOOTSTRAP and m.state is RState.WAIT_BOOTSTRAP


def test_pair_outside_table_is_local_error() -> None:
    m = RequestMachine(POLICY, _rng())
    with pytest.raises(ConfigError):
        m.feed(RInput.TIMER, 0.0)  # IDLE has no timer
    assert m.state is RState.ERROR
    with pytest.raises(ConfigError):
        m.feed(RInput.TRIGGER, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(RInput)), max_size=40), st.integers(0, 2**32))
def test_every_input_sequence_keeps_invariants(inputs: list[RInput], seed: int) -> None:
    m = RequestMachine(POLICY, _rng(seed))
    now = 0.0
    for inp in inputs:
        now += 0.5
        before = m.state
        if (before, inp) not in TRANSITIONS:
            with pytest.raises(ConfigError):
                m.feed(inp, now)
            assert m.state is RState.ERROR
            return
        step = m.feed(inp, now)
        assert step.state is TRANSITIONS[(before, inp)][1]
        armed = m.state in (RState.SCHEDULED, RState.IN_FLIGHT, RState.BACKOFF, RState.GAVE_UP)
        assert (m.deadline is not None) == armed
        arming = (Action.SCHEDULE, Action.SEND, Action.SEND_NOW, Action.BACK_OFF, Action.GIVE_UP)
        if step.action in arming:
            assert m.deadline is not None and m.deadline >= now
        assert m.attempt >= 0
