"""aiohttp drivers for GBA clients: the UE's Ub bootstrap and a NAF's Zn lookups.

* :func:`bootstrap` runs a :class:`~mbmsec.gba.client.BootstrapClient` against a BSF URL.
* :class:`ZnClient` asks the BSF for a UE's NAF key (``POST /zn/bootstrapping-info``) and
  caches answers until their key expiry (bounded LRU), as a BM-SC does for every request
  carrying the same B-TID.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable

import aiohttp

from ..gba.client import BootstrapClient, BootstrapResult
from ..gba.zn import ZN_PATH, ZnAnswer, ZnRequest, zn_error_from_response
from ..httpmsg import HttpRequest, HttpResponse

__all__ = ["MAX_RESPONSE", "ZnClient", "bootstrap", "send"]

MAX_RESPONSE = 65536


async def send(
    session: aiohttp.ClientSession, base_url: str, request: HttpRequest, timeout: float = 10.0
) -> HttpResponse:
    """Send one :class:`HttpRequest` to ``base_url`` and return the :class:`HttpResponse`.

    The body is read to its end, at most ``MAX_RESPONSE`` octets (the rest is dropped).
    """
    url = base_url.rstrip("/") + request.target
    async with session.request(
        request.method,
        url,
        headers=list(request.headers),
        data=request.body or None,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=False,
    ) as resp:
        # read() returns what has arrived so far: loop until EOF (a body may come in pieces)
        body = bytearray()
        while len(body) <= MAX_RESPONSE:
            chunk = await resp.content.read(MAX_RESPONSE + 1 - len(body))
            if not chunk:
                break
            body += chunk
        return HttpResponse(resp.status, tuple(resp.headers.items()), bytes(body[:MAX_RESPONSE]))


async def bootstrap(
    client: BootstrapClient,
    bsf_url: str,
    *,
    session: aiohttp.ClientSession | None = None,
    clock: Callable[[], float] = time.time,
    timeout: float = 10.0,
) -> BootstrapResult:
    """Run one Ub bootstrap to completion; return the result.

    Raises what :meth:`BootstrapClient.receive` raises, or aiohttp/asyncio errors when the BSF
    is unreachable.
    """
    own = session is None
    s = session if session is not None else aiohttp.ClientSession()
    try:
        req: HttpRequest | None = client.start(clock())
        while req is not None:
            resp = await send(s, bsf_url, req, timeout)
            req = client.receive(resp, clock())
    finally:
        if own:
            await s.close()
    assert client.result is not None
    return client.result


class ZnClient:
    """A NAF's Zn client with an answer cache keyed by (B-TID, NAF_Id, GBA_U awareness)."""

    def __init__(
        self,
        bsf_url: str,
        *,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
    ) -> None:
        self.bsf_url = bsf_url.rstrip("/")
        if token is not None:
            self._auth = f"Bearer {token}"
        elif basic is not None:
            self._auth = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        else:
            raise ValueError("ZnClient needs a token or Basic credentials")
        self._session = session
        self._own = session is None
        self._cache: OrderedDict[tuple[str, bytes, bool], ZnAnswer] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self._timeout = timeout
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"ZnClient({self.bsf_url!r}, <credentials redacted>)"

    async def lookup(self, btid: str, naf_id: bytes, *, gba_u_aware: bool = False) -> ZnAnswer:
        """Return the BSF's answer for this B-TID and NAF_Id (from cache while unexpired).

        Raises :class:`~mbmsec.gba.zn.ZnLookupError` for 4xx/5xx answers (``btid_invalid``
        for unknown/expired B-TIDs), DecodeError for a malformed 200 body.
        """
        key = (btid, naf_id, gba_u_aware)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now < hit.key_expiry:
            self._cache.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        if self._session is None:
            self._session = aiohttp.ClientSession()
        req = HttpRequest(
            "POST",
            ZN_PATH,
            (("Authorization", self._auth), ("Content-Type", "application/json")),
            ZnRequest(btid, naf_id, gba_u_aware).to_json(),
        )
        resp = await send(self._session, self.bsf_url, req, self._timeout)
        if resp.status != 200:
            self._cache.pop(key, None)
            raise zn_error_from_response(resp.status, resp.body)
        answer = ZnAnswer.from_json(resp.body)
        self._cache[key] = answer
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return answer

    def forget(self, btid: str) -> None:
        """Drop every cached answer for ``btid`` (e.g. after the UE re-bootstrapped)."""
        for k in [k for k in self._cache if k[0] == btid]:
            del self._cache[k]

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None
