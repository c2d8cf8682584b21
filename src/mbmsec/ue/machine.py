"""The UE's request supervision state machine, one instance per wanted key (sans-I/O).

Theory of operation
-------------------
The UE key client (:mod:`mbmsec.ue.client`) keeps one :class:`RequestMachine` for every thing it
must obtain from the network: a bootstrapped key (Ub, TS 33.220 §4.5.2), the current MSK of a
user service (activation, and the successor before the current one expires), or one named MSK
that an MTK message or an SRTP MKI mentioned and the UE does not hold (TS 33.246 §6.3.2.2.3,
missed key update). The machine decides *when* to send; the client decides *what* to send.

Rules:

1. A **trigger** (expiry coming, unknown MSK seen, registration wanted, an error cause asking to
   come back) schedules the first attempt at a random instant within ``spread`` (so that all UEs
   seeing the same multicast MTK message do not ask at once). Further triggers while a cycle
   runs change nothing.
2. When the attempt is due and the request needs GBA keys that the UE does not have (no B-TID,
   or it expired), the machine waits for the bootstrap (``WAIT_BOOTSTRAP``); the client starts
   one. When the bootstrap completes the attempt is sent at once.
3. Each attempt waits ``interval(attempt)`` (exponential, capped, jittered); with no useful answer
   by then the request is sent again, as a fresh request (new CSB ID, RAND, T, so the BM-SC's
   replay cache does not drop it).
4. An **error cause** from the BM-SC: "KEK not in place, B-TID unknown" -> bootstrap again, then
   retry (rule 2); "KEK unavailable" (BSF/HSS unreachable), "key not available yet", "invalid
   timestamp", "unspecified", HTTP 5xx, or a transport failure -> back off at least
   ``retry_later`` and retry; "unknown service" / "not authorised" -> give up at once.
5. After ``max_attempts`` attempts without the key, the machine **gives up** (an event the user
   sees) and rests for ``cooldown``; a new trigger or the end of the cooldown starts a fresh
   cycle. So a UE that was unreachable recovers when it is back.
6. The wanted key arriving by any path (answer, push, another request) **satisfies** the machine
   in every state and returns it to ``IDLE``.

The table :data:`TRANSITIONS` below *is* the specification: ``(state, input) -> (action,
next state)``. A pair missing from it is a programming error (:class:`ConfigError`, local) and
moves the machine to ``ERROR``. Inputs ``TIMER``/``EXHAUSTED`` and ``TIMER``/``NO_KEYS`` are
told apart by the machine itself from its attempt count and the client's key state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError
from .retry import RetryPolicy, Rng


class RState(Enum):
    """States of a :class:`RequestMachine`."""

    IDLE = "idle"
    SCHEDULED = "scheduled"
    WAIT_BOOTSTRAP = "wait-bootstrap"
    IN_FLIGHT = "in-flight"
    BACKOFF = "backoff"
    GAVE_UP = "gave-up"
    ERROR = "error"


class RInput(Enum):
    """Inputs of a :class:`RequestMachine`."""

    TRIGGER = "trigger"
    TIMER = "timer"
    EXHAUSTED = "exhausted"
    NO_KEYS = "no-keys"
    BOOTSTRAPPED = "bootstrapped"
    SATISFIED = "satisfied"
    ERROR_RETRY = "error-retry"
    ERROR_BOOTSTRAP = "error-bootstrap"
    ERROR_FATAL = "error-fatal"


class Action(Enum):
    """What the client must do after a transition."""

    NONE = "none"
    SCHEDULE = "schedule"  # arm the first attempt at now + spread jitter
    SEND = "send"  # send an attempt now and arm its answer timeout
    SEND_NOW = "send-now"  # as SEND, right after a bootstrap (deadline now)
    NEED_BOOTSTRAP = "need-bootstrap"  # make sure a bootstrap runs; wait for it
    BACK_OFF = "back-off"  # arm the next attempt after an error cause
    GIVE_UP = "give-up"  # report, then rest for the cooldown
    FINISH = "finish"  # the key is here: disarm


S, In, A = RState, RInput, Action

#: (state, input) -> (action, next state). Rules 1-6 of the module docstring.
TRANSITIONS: dict[tuple[RState, RInput], tuple[Action, RState]] = {
    # rule 1: triggers
    (S.IDLE, In.TRIGGER): (A.SCHEDULE, S.SCHEDULED),
    (S.SCHEDULED, In.TRIGGER): (A.NONE, S.SCHEDULED),
    (S.WAIT_BOOTSTRAP, In.TRIGGER): (A.NONE, S.WAIT_BOOTSTRAP),
    (S.IN_FLIGHT, In.TRIGGER): (A.NONE, S.IN_FLIGHT),
    (S.BACKOFF, In.TRIGGER): (A.NONE, S.BACKOFF),
    (S.GAVE_UP, In.TRIGGER): (A.SCHEDULE, S.SCHEDULED),
    # rules 2-3: attempts
    (S.SCHEDULED, In.TIMER): (A.SEND, S.IN_FLIGHT),
    (S.SCHEDULED, In.NO_KEYS): (A.NEED_BOOTSTRAP, S.WAIT_BOOTSTRAP),
    (S.WAIT_BOOTSTRAP, In.BOOTSTRAPPED): (A.SEND_NOW, S.IN_FLIGHT),
    (S.IN_FLIGHT, In.TIMER): (A.SEND, S.IN_FLIGHT),
    (S.IN_FLIGHT, In.NO_KEYS): (A.NEED_BOOTSTRAP, S.WAIT_BOOTSTRAP),
    (S.BACKOFF, In.TIMER): (A.SEND, S.IN_FLIGHT),
    (S.BACKOFF, In.NO_KEYS): (A.NEED_BOOTSTRAP, S.WAIT_BOOTSTRAP),
    # rule 4: error causes
    (S.IN_FLIGHT, In.ERROR_RETRY): (A.BACK_OFF, S.BACKOFF),
    (S.IN_FLIGHT, In.ERROR_BOOTSTRAP): (A.NEED_BOOTSTRAP, S.WAIT_BOOTSTRAP),
    (S.IN_FLIGHT, In.ERROR_FATAL): (A.GIVE_UP, S.GAVE_UP),
    (S.BACKOFF, In.ERROR_RETRY): (A.NONE, S.BACKOFF),  # late answer to an earlier attempt
    (S.BACKOFF, In.ERROR_BOOTSTRAP): (A.NEED_BOOTSTRAP, S.WAIT_BOOTSTRAP),
    (S.BACKOFF, In.ERROR_FATAL): (A.GIVE_UP, S.GAVE_UP),
    (S.WAIT_BOOTSTRAP, In.ERROR_RETRY): (A.NONE, S.WAIT_BOOTSTRAP),
    (S.WAIT_BOOTSTRAP, In.ERROR_BOOTSTRAP): (A.NONE, S.WAIT_BOOTSTRAP),
    (S.WAIT_BOOTSTRAP, In.ERROR_FATAL): (A.GIVE_UP, S.GAVE_UP),
    # rule 5: give up, cool down
    (S.IN_FLIGHT, In.EXHAUSTED): (A.GIVE_UP, S.GAVE_UP),
    (S.BACKOFF, In.EXHAUSTED): (A.GIVE_UP, S.GAVE_UP),
    (S.GAVE_UP, In.TIMER): (A.SCHEDULE, S.SCHEDULED),
    # rule 6: satisfied from anywhere
    (S.IDLE, In.SATISFIED): (A.NONE, S.IDLE),
    (S.SCHEDULED, In.SATISFIED): (A.FINISH, S.IDLE),
    (S.WAIT_BOOTSTRAP, In.SATISFIED): (A.FINISH, S.IDLE),
    (S.IN_FLIGHT, In.SATISFIED): (A.FINISH, S.IDLE),
    (S.BACKOFF, In.SATISFIED): (A.FINISH, S.IDLE),
    (S.GAVE_UP, In.SATISFIED): (A.FINISH, S.IDLE),
    # inputs that may arrive late and change nothing
    (S.IDLE, In.ERROR_RETRY): (A.NONE, S.IDLE),
    (S.IDLE, In.ERROR_BOOTSTRAP): (A.NONE, S.IDLE),
    (S.IDLE, In.ERROR_FATAL): (A.NONE, S.IDLE),
    (S.IDLE, In.BOOTSTRAPPED): (A.NONE, S.IDLE),
    (S.SCHEDULED, In.BOOTSTRAPPED): (A.NONE, S.SCHEDULED),
    (S.IN_FLIGHT, In.BOOTSTRAPPED): (A.NONE, S.IN_FLIGHT),
    (S.BACKOFF, In.BOOTSTRAPPED): (A.NONE, S.BACKOFF),
    (S.GAVE_UP, In.BOOTSTRAPPED): (A.NONE, S.GAVE_UP),
    (S.GAVE_UP, In.ERROR_RETRY): (A.NONE, S.GAVE_UP),
    (S.GAVE_UP, In.ERROR_BOOTSTRAP): (A.NONE, S.GAVE_UP),
    (S.GAVE_UP, In.ERROR_FATAL): (A.NONE, S.GAVE_UP),
    (S.SCHEDULED, In.ERROR_RETRY): (A.NONE, S.SCHEDULED),
    (S.SCHEDULED, In.ERROR_BOOTSTRAP): (A.NONE, S.SCHEDULED),
    (S.SCHEDULED, In.ERROR_FATAL): (A.NONE, S.SCHEDULED),
}
del S, In, A


@dataclass(frozen=True)
class Step:
    """Result of one transition: the action the client must perform and the new state."""

    action: Action
    state: RState
    attempt: int


class RequestMachine:
    """Timing of one wanted key: when to send, when to give up. See the module docstring.

    ``deadline`` is the absolute time of the next TIMER input (None when nothing is armed);
    ``attempt`` counts attempts of the current cycle.
    """

    __slots__ = ("attempt", "deadline", "policy", "rng", "state")

    def __init__(self, policy: RetryPolicy, rng: Rng) -> None:
        self.policy = policy
        self.rng = rng
        self.state = RState.IDLE
        self.deadline: float | None = None
        self.attempt = 0

    def __repr__(self) -> str:
        return f"RequestMachine(state={self.state.value}, attempt={self.attempt})"

    def _transition(self, inp: RInput) -> tuple[Action, RState]:
        try:
            return TRANSITIONS[(self.state, inp)]
        except KeyError:
            old = self.state
            self.state = RState.ERROR
            self.deadline = None
            raise ConfigError(f"input {inp.value} not allowed in state {old.value}") from None

    def feed(self, inp: RInput, now: float, *, retry_after: float | None = None) -> Step:
        """Apply ``inp`` at time ``now``; arm the deadline the action implies.

        ``retry_after`` (seconds) lets an error answer ask for a minimum back-off. Returns the
        :class:`Step`; the client performs ``step.action`` (SEND: send an attempt now;
        NEED_BOOTSTRAP: start a bootstrap; GIVE_UP: report). Raises ConfigError for a pair not
        in :data:`TRANSITIONS`.
        """
        action, nxt = self._transition(inp)
        p = self.policy
        if action is Action.SCHEDULE:
            self.attempt = 0
            self.deadline = now + p.first_delay(self.rng)
        elif action in (Action.SEND, Action.SEND_NOW):
            self.attempt += 1
            self.deadline = now + p.interval(self.attempt, self.rng)
        elif action is Action.BACK_OFF:
            wait = max(p.retry_later, retry_after or 0.0, p.interval(self.attempt, self.rng))
            self.deadline = now + wait
        elif action is Action.NEED_BOOTSTRAP:
            self.deadline = None
        elif action is Action.GIVE_UP:
            self.deadline = now + p.cooldown
        elif action is Action.FINISH:
            self.deadline = None
            self.attempt = 0
        self.state = nxt
        return Step(action, nxt, self.attempt)

    def defer(self) -> None:
        """The attempt just decided (SEND) was not sent because an earlier one is still
        outstanding (an HTTP exchange always ends in an answer or a failure): it does not
        count towards ``max_attempts``; the timer stays armed."""
        self.attempt = max(0, self.attempt - 1)

    def on_timer(self, now: float, *, have_keys: bool) -> Step | None:
        """Feed TIMER (or EXHAUSTED / NO_KEYS) when the deadline has passed; else None.

        ``have_keys`` tells whether the GBA keys a request needs are in place.
        """
        if self.deadline is None or now < self.deadline:
            return None
        st = self.state
        if st in (RState.IN_FLIGHT, RState.BACKOFF) and self.attempt >= self.policy.max_attempts:
            return self.feed(RInput.EXHAUSTED, now)
        if st in (RState.SCHEDULED, RState.IN_FLIGHT, RState.BACKOFF) and not have_keys:
            return self.feed(RInput.NO_KEYS, now)
        return self.feed(RInput.TIMER, now)

    @property
    def active(self) -> bool:
        """True while a cycle is running (not IDLE, not resting after a give-up)."""
        return self.state not in (RState.IDLE, RState.GAVE_UP, RState.ERROR)
