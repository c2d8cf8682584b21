"""Benchmarks: a registry of cases, a timing harness and results with a measured floor.

A case measures mbmsec doing some protocol work ("ours") next to a **floor** measured in the
same run: the least work the protocol demands for the same result, done directly with
``cryptography`` / ``hmac`` without parsing, objects or checks. The printed ratio is
``ours ops/s / floor ops/s`` (1.0 would mean mbmsec adds nothing on top of the required crypto).

Adding a case: write a module with a function ``run(cfg: BenchConfig) -> list[Result]``
decorated with :func:`register_case`, and append its dotted name to :data:`CASE_MODULES`.
A case whose measurements do not fit the ours/floor columns (latency percentiles, bytes on the
wire) puts them in :attr:`Result.extra` and passes ``report=`` to print its own table after
the common one.

Timing uses ``time.perf_counter`` and lives here, outside the sans-I/O core. Ours and floor run
in alternating rounds and the best round of each counts, which damps drift and noise.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from ..errors import ConfigError

# Modules that contribute cases, in run order. Append yours (small edit).
CASE_MODULES: list[str] = ["mbmsec.bench.mikey", "mbmsec.bench.gba", "mbmsec.bench.bmsc"]

DEFAULT_SECONDS: Final = 2.0
DEFAULT_ROUNDS: Final = 3


@dataclass(frozen=True)
class BenchConfig:
    """How long to measure: ``seconds`` per measured function (ours or floor), split into
    ``rounds`` alternating rounds."""

    seconds: float = DEFAULT_SECONDS
    rounds: int = DEFAULT_ROUNDS

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ConfigError("--seconds must be positive")
        if self.rounds < 1:
            raise ConfigError("rounds must be at least 1")


@dataclass(frozen=True)
class Rate:
    """``ops`` operations done in ``seconds`` of wall time (best round)."""

    ops: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else float("inf")

    @property
    def us_per_op(self) -> float:
        return 1e6 * self.seconds / self.ops if self.ops else float("inf")

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ops": self.ops,
            "seconds": self.seconds,
            "per_second": self.per_second,
            "us_per_op": self.us_per_op,
        }


@dataclass(frozen=True)
class Result:
    """One measurement of a case: ours, the floor next to it, and what the floor does.

    ``extra``: further measured values (JSON-compatible) for the case's own report.
    """

    case: str
    name: str
    unit: str
    ours: Rate
    floor: Rate | None = None
    floor_definition: str = ""
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """ours ops/s divided by floor ops/s (None without a floor)."""
        if self.floor is None:
            return None
        return self.ours.per_second / self.floor.per_second

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "name": self.name,
            "unit": self.unit,
            "ours": self.ours.as_dict(),
            "floor": None if self.floor is None else self.floor.as_dict(),
            "ratio": self.ratio,
            "floor_definition": self.floor_definition,
            "notes": list(self.notes),
            "extra": dict(self.extra),
        }


CaseRunner = Callable[[BenchConfig], list[Result]]
CaseReport = Callable[[list[Result], TextIO], None]


@dataclass(frozen=True)
class BenchCase:
    name: str
    description: str
    run: CaseRunner = field(repr=False)
    report: CaseReport | None = field(default=None, repr=False)


_REGISTRY: dict[str, BenchCase] = {}


def register_case(
    name: str, description: str, *, report: CaseReport | None = None
) -> Callable[[CaseRunner], CaseRunner]:
    """Decorator: register ``run`` as bench case ``name``; ``report`` (optional) prints the
    case's own table of its results after the common one. Raises ConfigError on a duplicate."""

    def deco(run: CaseRunner) -> CaseRunner:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.run is not run:
            raise ConfigError(f"bench case {name!r} registered twice")
        _REGISTRY[name] = BenchCase(name, description, run, report)
        return run

    return deco


def load_cases() -> dict[str, BenchCase]:
    """Import every module in :data:`CASE_MODULES` and return the registry, in order."""
    for mod in CASE_MODULES:
        importlib.import_module(mod)
    return dict(_REGISTRY)


# --- timing ---------------------------------------------------------------------------------


def _run_for(fn: Callable[[], object], budget: float) -> Rate:
    """Call ``fn`` repeatedly for about ``budget`` seconds (at least once); batches grow so the
    clock is read rarely."""
    clock = time.perf_counter
    ops = 0
    batch = 1
    start = clock()
    elapsed = 0.0
    while True:
        for _ in range(batch):
            fn()
        ops += batch
        elapsed = clock() - start
        if elapsed >= budget:
            return Rate(ops, elapsed)
        if elapsed < budget / 50:
            batch *= 2


def measure(fn: Callable[[], object], cfg: BenchConfig) -> Rate:
    """Best-of-rounds rate of ``fn`` alone (one warm-up call first)."""
    fn()
    rates = [_run_for(fn, cfg.seconds / cfg.rounds) for _ in range(cfg.rounds)]
    return max(rates, key=lambda r: r.per_second)


def measure_pair(
    ours: Callable[[], object], floor: Callable[[], object], cfg: BenchConfig
) -> tuple[Rate, Rate]:
    """Best-of-rounds rates of ``ours`` and ``floor``, measured in alternating rounds."""
    ours()
    floor()
    budget = cfg.seconds / cfg.rounds
    o: list[Rate] = []
    f: list[Rate] = []
    for _ in range(cfg.rounds):
        o.append(_run_for(ours, budget))
        f.append(_run_for(floor, budget))
    return max(o, key=lambda r: r.per_second), max(f, key=lambda r: r.per_second)
