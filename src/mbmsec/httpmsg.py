"""Small HTTP request/response dataclasses for the sans-I/O request/response roles.

The BSF (Ub, Zn), the BM-SC HTTP interface and the UE clients exchange these; only
:mod:`mbmsec.net` turns them into sockets (aiohttp). Header names compare case-insensitively
(RFC 9110 §5.1); header order and repetition are preserved.

``repr`` shows neither bodies (a Zn answer carries Ks_NAF) nor credential header values (a Zn
request carries the NAF's Bearer token): only their sizes and the header names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["HttpRequest", "HttpResponse"]

Headers = tuple[tuple[str, str], ...]


def _get(headers: Headers, name: str) -> str | None:
    n = name.lower()
    for k, v in headers:
        if k.lower() == n:
            return v
    return None


def _get_all(headers: Headers, name: str) -> list[str]:
    n = name.lower()
    return [v for k, v in headers if k.lower() == n]


_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _repr_headers(headers: Headers) -> str:
    return (
        "("
        + ", ".join(
            f"{k}: <redacted>" if k.lower() in _CREDENTIAL_HEADERS else f"{k}: {v!r}"
            for k, v in headers
        )
        + ")"
    )


@dataclass(frozen=True, slots=True, repr=False)
class HttpRequest:
    """An HTTP request: method, request-target, headers, body; ``peer`` names the client."""

    method: str
    target: str
    headers: Headers = ()
    body: bytes = b""
    peer: str = ""

    def __repr__(self) -> str:
        return (
            f"HttpRequest({self.method} {self.target!r}, headers={_repr_headers(self.headers)}, "
            f"body=<{len(self.body)} bytes>, peer={self.peer!r})"
        )

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return _get(self.headers, name)

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` in order."""
        return _get_all(self.headers, name)

    @property
    def path(self) -> str:
        """The request-target without its query string."""
        return self.target.split("?", 1)[0]


@dataclass(frozen=True, slots=True, repr=False)
class HttpResponse:
    """An HTTP response: status, headers, body."""

    status: int
    headers: Headers = ()
    body: bytes = b""

    def __repr__(self) -> str:
        return (
            f"HttpResponse({self.status}, headers={_repr_headers(self.headers)}, "
            f"body=<{len(self.body)} bytes>)"
        )

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return _get(self.headers, name)

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` in order."""
        return _get_all(self.headers, name)

    @classmethod
    def json(cls, status: int, obj: object, headers: Headers = ()) -> HttpResponse:
        """A response with a compact JSON body and ``Content-Type: application/json``."""
        body = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        return cls(status, (("Content-Type", "application/json"), *headers), body)

    @classmethod
    def text(cls, status: int, text: str, headers: Headers = ()) -> HttpResponse:
        """A response with a short ``text/plain`` body."""
        return cls(status, (("Content-Type", "text/plain; charset=utf-8"), *headers), text.encode())
