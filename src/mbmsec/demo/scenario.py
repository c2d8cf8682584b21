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

from dataclasses import asdict, dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["PHASES", "Break", "DemoConfig", "ProfileMix", "profiles_for"]


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
