"""Events the UE key client reports, and the names of the things it wants (sans-I/O).

Events carry key *identifiers* only (MSK ID, MTK ID, B-TID), never key bytes; their ``str``
form is one log line. The client queues them; ``next_event()`` hands them out in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..mbms.keys import MskRef


class WantKind(Enum):
    """What a request machine is trying to obtain."""

    BOOTSTRAP = "bootstrap"  # a B-TID and the GBA keys (Ub)
    SERVICE = "service"  # the current MSK of a service, and its successor before expiry
    MSK = "msk"  # one named MSK (missed key update, TS 33.246 §6.3.2.2.3)


@dataclass(frozen=True, order=True)
class Want:
    """The name of one supervised request: kind plus service ID or MSK."""

    kind: WantKind
    service_id: str = ""
    msk: MskRef | None = None

    def __str__(self) -> str:
        if self.kind is WantKind.SERVICE:
            return f"service:{self.service_id}"
        if self.kind is WantKind.MSK:
            return f"msk:{self.msk}"
        return "bootstrap"


BOOTSTRAP = Want(WantKind.BOOTSTRAP)


@dataclass(frozen=True)
class UeEvent:
    """Base class of UE events; ``at`` is the virtual or real time it happened."""

    at: float

    @property
    def name(self) -> str:
        """Short event name for logs (``msk-installed``...)."""
        return _NAMES.get(type(self).__name__, type(self).__name__)

    def fields(self) -> dict[str, object]:
        """The event's fields as log-safe values (identifiers only)."""
        out: dict[str, object] = {}
        for k, v in self.__dict__.items():
            out[k] = v if isinstance(v, str | int | float | bool | None) else str(v)
        return out


@dataclass(frozen=True)
class Bootstrapped(UeEvent):
    """Ub bootstrapping finished: a new B-TID valid until ``expires``."""

    btid: str
    expires: float


@dataclass(frozen=True)
class BootstrapFailed(UeEvent):
    """A bootstrap attempt failed (BSF unreachable, refused, AKA failure)."""

    reason: str


@dataclass(frozen=True)
class Registered(UeEvent):
    """3GPP profile: the BM-SC accepted the registration to ``service_id`` (HTTP 200 item)."""

    service_id: str


@dataclass(frozen=True)
class RequestSent(UeEvent):
    """An attempt of a supervised request went out (``attempt`` counts from 1 per cycle)."""

    want: str
    attempt: int
    why: str


@dataclass(frozen=True)
class RequestRefused(UeEvent):
    """The BM-SC answered a request with an error cause (MIKEY Error no or HTTP status)."""

    want: str
    cause: int
    cause_name: str
    authenticated: bool


@dataclass(frozen=True)
class RequestGaveUp(UeEvent):
    """A request cycle ended without the key; the UE rests, then tries again."""

    want: str
    attempts: int
    reason: str


@dataclass(frozen=True)
class MskInstalled(UeEvent):
    """An MSK arrived and verified; valid for MTK IDs ``[mtk_id_first, mtk_id_last]``."""

    msk_id: str
    service_id: str | None
    mtk_id_first: int
    mtk_id_last: int
    via: str


@dataclass(frozen=True)
class MskDeleted(UeEvent):
    """An MSK left the UE's store (superseded or expired)."""

    msk_id: str


@dataclass(frozen=True)
class MtkInstalled(UeEvent):
    """An MTK passed the MGV-F checks (MAC, COUNTER, MTK ID) and is usable for SRTP."""

    msk_id: str
    mtk_id: int


@dataclass(frozen=True)
class MessageDropped(UeEvent):
    """A datagram was dropped silently (no answer goes out): bad MAC, replay, malformed..."""

    kind: str
    reason: str


_NAMES = {
    "Bootstrapped": "bootstrapped",
    "BootstrapFailed": "bootstrap-failed",
    "Registered": "registered",
    "RequestSent": "request-sent",
    "RequestRefused": "request-refused",
    "RequestGaveUp": "request-gave-up",
    "MskInstalled": "msk-installed",
    "MskDeleted": "msk-deleted",
    "MtkInstalled": "mtk-installed",
    "MessageDropped": "message-dropped",
}
