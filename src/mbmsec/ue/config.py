"""Configuration of the UE key client (sans-I/O): services, profile, addresses, retry policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from ..mbms.messages import MIKEY_PORT
from .retry import RetryPolicy

__all__ = ["Addr", "Profile", "ServiceConfig", "UeConfig"]

Addr = tuple[str, int]
Profile = Literal["compact", "3gpp"]


@dataclass(frozen=True)
class ServiceConfig:
    """A user service the UE wants; the key family and MTK period may be known from the USD."""

    service_id: str
    key_domain_id: bytes | None = None
    key_group: int | None = None
    mtk_period: float | None = None


@dataclass(frozen=True)
class UeConfig:
    """UE settings. ``bmsc_addr``: the BM-SC's MIKEY UDP address (compact requests)."""

    bmsc_fqdn: str
    services: tuple[ServiceConfig, ...]
    profile: Profile = "compact"
    bmsc_addr: Addr = ("127.0.0.1", MIKEY_PORT)
    mikey_port: int = MIKEY_PORT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    bootstrap_retry: RetryPolicy = field(default_factory=RetryPolicy)
    rebootstrap_margin: float = 300.0
    max_msk_wants: int = 4

    def __post_init__(self) -> None:
        if self.profile not in ("compact", "3gpp"):
            raise ConfigError("profile must be compact or 3gpp")
        if not self.services:
            raise ConfigError("at least one service")
