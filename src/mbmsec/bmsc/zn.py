"""Where the BM-SC gets a UE's NAF keys: the Zn lookup interface, sans-I/O.

:class:`ZnLookup` is synchronous: ``lookup(btid, now)`` returns the BSF's
:class:`~mbmsec.gba.zn.ZnAnswer` or raises

- :class:`~mbmsec.errors.BtidUnknownError`: the B-TID is unknown or expired (the UE must
  bootstrap again; TS 24.109 §5.2.4, Zn result 5403),
- :class:`~mbmsec.errors.BsfUnreachableError`: the BSF / HSS cannot be reached,
- :class:`ZnPendingError`: the answer is being fetched; ask again after :meth:`on_zn_ready`
  of the core (only the asynchronous cache raises it).

Implementations:

- :class:`LocalZnLookup` asks an in-process :class:`~mbmsec.gba.bsf.Bsf` (demo, simulator,
  tests): the real Zn handler, called through its HTTP dataclasses.
- :class:`ZnAnswerCache` is the sans-I/O half of the networked lookup: it answers from its
  cache, and on a miss records the B-TID as wanted and raises ZnPendingError. The net driver
  takes :meth:`ZnAnswerCache.take_wanted`, runs the Zn HTTP request
  (:class:`mbmsec.net.gba_client.ZnClient`), then calls :meth:`ZnAnswerCache.put` or
  :meth:`ZnAnswerCache.fail`, and tells the core.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from typing import Final, Protocol, runtime_checkable

from ..errors import (
    BsfUnreachableError,
    BtidUnknownError,
    DecodeError,
    KeyUnavailableError,
    MbmsecError,
)
from ..gba.bsf import Bsf
from ..gba.zn import (
    DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID,
    ZN_PATH,
    ZnAnswer,
    ZnRequest,
    zn_error_from_response,
)
from ..httpmsg import HttpRequest

__all__ = ["LocalZnLookup", "ZnAnswerCache", "ZnLookup", "ZnPendingError"]

NEGATIVE_TTL: Final = 5.0  # seconds a failed lookup is remembered (no Zn storm per datagram)
MAX_IN_FLIGHT: Final = 1024  # Zn lookups wanted or running at once (junk B-TIDs cost nothing)


class ZnPendingError(KeyUnavailableError):
    """The NAF keys for this B-TID are being fetched; try again when they arrive."""

    mikey_error = 242
    http_status = 503


@runtime_checkable
class ZnLookup(Protocol):
    """Synchronous Zn lookup used by the BM-SC core (see the module docstring)."""

    def lookup(self, btid: str, now: float) -> ZnAnswer:
        """The BSF's answer for ``btid`` (keys for this BM-SC's NAF_Id); raises as documented."""
        ...


class LocalZnLookup:
    """Zn lookup against an in-process BSF through its real Zn handler (``Bsf.handle``)."""

    def __init__(
        self, bsf: Bsf, naf_id: bytes, credential: tuple[str, str], *, gba_u_aware: bool = True
    ) -> None:
        user, secret = credential
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        self._auth = f"Basic {token}"
        self._bsf = bsf
        self.naf_id = naf_id
        self.gba_u_aware = gba_u_aware
        self.calls = 0

    def __repr__(self) -> str:
        return f"LocalZnLookup(naf_id={self.naf_id!r}, <credential redacted>)"

    def lookup(self, btid: str, now: float) -> ZnAnswer:
        """Ask the BSF; map 404/5403 to BtidUnknownError and other failures to
        BsfUnreachableError."""
        self.calls += 1
        req = HttpRequest(
            "POST",
            ZN_PATH,
            (("Authorization", self._auth), ("Content-Type", "application/json")),
            ZnRequest(btid, self.naf_id, self.gba_u_aware).to_json(),
            peer="local",
        )
        resp = self._bsf.handle(req, now)
        if resp.status != 200:
            err = zn_error_from_response(resp.status, resp.body)
            if err.diameter_result == DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID:
                raise BtidUnknownError(f"B-TID unknown or expired ({err.error})")
            raise BsfUnreachableError(f"Zn lookup failed: {resp.status} {err.error}")
        try:
            return ZnAnswer.from_json(resp.body)
        except DecodeError as exc:
            raise BsfUnreachableError("malformed Zn answer") from exc


class ZnAnswerCache:
    """Bounded LRU of Zn answers, filled by the net driver (see the module docstring).

    Answers are kept until their key expiry; failures for :data:`NEGATIVE_TTL` seconds. At
    most ``max_in_flight`` lookups are wanted or running (taken, not yet put / failed) at once:
    a miss beyond that raises BsfUnreachableError (not remembered), so a flood of made-up
    B-TIDs cannot open unbounded Zn requests.
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        negative_ttl: float = NEGATIVE_TTL,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._answers: OrderedDict[str, ZnAnswer] = OrderedDict()
        self._failures: OrderedDict[str, tuple[float, MbmsecError]] = OrderedDict()
        self._wanted: dict[str, None] = {}
        self._in_flight: set[str] = set()
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl
        self.max_in_flight = max_in_flight

    def __repr__(self) -> str:
        return f"ZnAnswerCache(answers={len(self._answers)}, wanted={len(self._wanted)})"

    def lookup(self, btid: str, now: float) -> ZnAnswer:
        """Cached answer, else raise the remembered failure, else ZnPendingError (and remember
        that ``btid`` is wanted). An expired answer raises BtidUnknownError."""
        a = self._answers.get(btid)
        if a is not None:
            if now < a.key_expiry:
                self._answers.move_to_end(btid)
                return a
            del self._answers[btid]
            raise BtidUnknownError("B-TID key lifetime has ended")
        f = self._failures.get(btid)
        if f is not None:
            if now < f[0]:
                raise f[1]
            del self._failures[btid]
        if btid not in self._wanted and btid not in self._in_flight:
            if len(self._wanted) + len(self._in_flight) >= self.max_in_flight:
                raise BsfUnreachableError("too many Zn lookups in flight")
            self._wanted[btid] = None
        raise ZnPendingError(f"Zn lookup for {btid} pending")

    def take_wanted(self) -> list[str]:
        """The B-TIDs to fetch, oldest first; each is returned once and counts as in flight
        until :meth:`put`, :meth:`fail` or :meth:`forget`."""
        out = list(self._wanted)
        self._wanted.clear()
        self._in_flight.update(out)
        return out

    def put(self, btid: str, answer: ZnAnswer) -> None:
        """Store a successful answer."""
        self._in_flight.discard(btid)
        self._failures.pop(btid, None)
        self._answers[btid] = answer
        self._answers.move_to_end(btid)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)

    def fail(self, btid: str, error: BtidUnknownError | BsfUnreachableError, now: float) -> None:
        """Remember a failed lookup for ``negative_ttl`` seconds."""
        self._in_flight.discard(btid)
        self._answers.pop(btid, None)
        self._failures[btid] = (now + self.negative_ttl, error)
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def forget(self, btid: str) -> None:
        """Drop whatever is known about ``btid``."""
        self._in_flight.discard(btid)
        self._wanted.pop(btid, None)
        self._answers.pop(btid, None)
        self._failures.pop(btid, None)
