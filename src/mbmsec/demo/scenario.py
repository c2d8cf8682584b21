"""The demo's configuration and the phases of its scenario.

Timeline (docs/demo.md has the full story)::

    setup        provision subscribers in the HSS, start BSF, BM-SC, N UE runners
    bootstrap    every UE bootstraps over Ub (HTTP Digest AKA) and gets a B-TID
    register     every UE registers for the service and receives its first MSK and MTK
                 (compact: key request / key response; 3gpp: HTTP register + MSK push)
    stream       SRTP (keyed from the current MTK, MKI = MSK ID || MTK ID) flows to the group;
                 the MTK rotates every ``mtk_period`` seconds
    unreachable  one UE loses all traffic for ``outage`` seconds, then catches up
    bsf-outage   the BSF stops and the BM-SC loses its Zn answers just before the next MSK is
                 offered; the UEs' requests for it get an error cause; the BSF restarts and
                 every UE obtains the next MSK
    msk-rotation the MSK rotates mid-stream; every UE decrypts under the new MSK
    drain        the stream stops, late packets are counted, the report is made

``--break`` makes one real thing wrong on purpose, so the demo must fail clearly:
``wrong-k`` provisions one UE's USIM with a K the HSS does not have; ``zn-credentials`` gives
the BM-SC a Zn password the BSF does not accept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..ue.retry import RetryPolicy

__all__ = [
    "PHASES",
    "Break",
    "DemoConfig",
    "ProfileMix",
    "Timing",
    "make_timing",
    "profiles_for",
    "rotation_boundary",
]


class ProfileMix(StrEnum):
    """Which key-request profile the UEs use."""

    COMPACT = "compact"
    THREEGPP = "3gpp"
    MIXED = "mixed"


class Break(StrEnum):
    """Deliberate faults for ``--break``."""

    WRONG_K = "wrong-k"
    ZN_CREDENTIALS = "zn-credentials"


# (name, title) in the order they run.
PHASES: tuple[tuple[str, str], ...] = (
    ("setup", "Start HSS+BSF, BM-SC and UEs"),
    ("bootstrap", "Bootstrap every UE over Ub"),
    ("register", "Register and deliver the first MSK/MTK"),
    ("stream", "SRTP stream with MTK rotations"),
    ("unreachable", "One UE unreachable, then catching up"),
    ("bsf-outage", "BSF outage and recovery"),
    ("msk-rotation", "MSK rotation mid-stream"),
    ("drain", "Stop the stream and count"),
)


@dataclass(frozen=True)
class DemoConfig:
    """Everything ``mbmsec demo`` can be told; the defaults finish well under a minute."""

    ues: int = 20
    profile: ProfileMix = ProfileMix.MIXED
    mtk_period: float = 1.0
    mtk_rotations: int = 3
    outage: float = 1.5
    packet_interval: float | None = None
    phase_timeout: float = 20.0
    timeout: float | None = None
    force_unicast: bool = False
    pcap: Path | None = None
    keylog: Path | None = None
    json: Path | None = None
    workdir: Path | None = None
    break_: Break | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.ues <= 5000:
            raise ConfigError("--ues must be between 1 and 5000")
        if self.mtk_period < 0.2:
            raise ConfigError("--mtk-period must be at least 0.2 s")
        if self.mtk_rotations < 1:
            raise ConfigError("--mtk-rotations must be at least 1")
        if self.packet_interval is not None and not 0.001 <= self.packet_interval <= 1.0:
            raise ConfigError("--packet-interval must be between 0.001 and 1 s")
        if self.outage <= 0:
            raise ConfigError("--outage must be positive")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError("--timeout must be positive")

    @property
    def media_interval(self) -> float:
        """Seconds between SRTP packets: given, or 20 ms up to 40 UEs and longer beyond."""
        if self.packet_interval is not None:
            return self.packet_interval
        return max(0.02, 0.02 * self.ues / 40)

    @property
    def phase_deadline(self) -> float:
        """Deadline of a waiting phase: the base plus 0.1 s per UE."""
        return self.phase_timeout + 0.1 * self.ues

    @property
    def global_timeout(self) -> float:
        """The whole run's deadline in seconds (given, or scaled with the number of UEs)."""
        if self.timeout is not None:
            return self.timeout
        return 90.0 + 0.3 * self.ues

    def summary(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (paths as text)."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            name = "break" if k == "break_" else k
            if isinstance(v, Enum):
                v = v.value
            elif isinstance(v, Path):
                v = str(v)
            out[name] = v
        out["global_timeout"] = self.global_timeout
        return out


def profiles_for(n: int, mix: ProfileMix) -> list[str]:
    """The profile of each of ``n`` UEs: all one profile, or alternating for ``mixed``."""
    if mix is ProfileMix.MIXED:
        return ["compact" if i % 2 == 0 else "3gpp" for i in range(n)]
    return [mix.value] * n


@dataclass(frozen=True)
class Timing:
    """The demo service's key schedule and the UEs' retry policies (seconds, POSIX times)."""

    mtk_period: float
    msk_lifetime: float
    msk_lead: float
    mtk_lead: float
    announce_interval: float
    start: float
    ue_retry: RetryPolicy
    ue_bootstrap_retry: RetryPolicy


def _need(cfg: DemoConfig, msk_lead: float) -> float:
    """Seconds the phases before the MSK rotation need after the stream starts."""
    p = cfg.mtk_period
    return cfg.mtk_rotations * p + cfg.outage + 1.5 * p + msk_lead + 0.2 * p


def make_timing(cfg: DemoConfig, now: float) -> Timing:
    """The schedule for a demo set up at ``now``.

    MTK period P; the next MSK is offered ``5P`` before it starts (``msk_lead``); the UEs ask
    for it ``3P`` before the current one ends. The MSK period covers an estimate of the
    startup plus what the phases before the rotation need, and the grid origin is placed so
    that the first MSK boundary falls right after them when startup is as fast as estimated.
    """
    p = cfg.mtk_period
    n = cfg.ues
    msk_lead = 5.0 * p
    need = _need(cfg, msk_lead)
    startup = 3.0 + 0.05 * n  # setup + bootstrap + registration, estimated
    lifetime = math.ceil((need + startup + 2.0 * p) / p) * p
    retry = RetryPolicy(
        spread=min(1.0, 0.2 + 0.005 * n),
        first_timeout=1.0,
        backoff_factor=1.5,
        max_interval=1.5,
        max_attempts=40,
        cooldown=1.0,
        lead_time=3.0 * p,
        retry_later=0.4,
    )
    boot_retry = RetryPolicy(
        spread=min(2.0, 0.1 + 0.01 * n),
        first_timeout=3.0,
        backoff_factor=1.5,
        max_interval=3.0,
        max_attempts=40,
        cooldown=1.0,
        lead_time=0.0,
        retry_later=0.5,
    )
    return Timing(
        mtk_period=p,
        msk_lifetime=lifetime,
        msk_lead=msk_lead,
        mtk_lead=0.25 * p,
        announce_interval=0.5 * p,
        start=now + startup + need - lifetime,
        ue_retry=retry,
        ue_bootstrap_retry=boot_retry,
    )


def rotation_boundary(cfg: DemoConfig, timing: Timing, stream_start: float) -> float:
    """The first MSK boundary that leaves the phases before the rotation enough time."""
    need = _need(cfg, timing.msk_lead)
    i = math.ceil((stream_start + need - timing.start) / timing.msk_lifetime - 1e-9)
    return timing.start + i * timing.msk_lifetime
