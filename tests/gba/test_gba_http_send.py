"""``mbmsec.net.gba_client.send`` over real loopback HTTP: bodies that arrive in pieces are read
whole (a Ub 200 body is covered by rspauth, a Zn answer is JSON), oversized ones are cut at
MAX_RESPONSE."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from mbmsec.httpmsg import HttpRequest
from mbmsec.net.gba_client import MAX_RESPONSE, send


async def _serve_in_pieces(request: web.Request) -> web.StreamResponse:
    size = int(request.query["size"])
    r = web.StreamResponse(status=200)
    r.content_length = size
    await r.prepare(request)
    sent = 0
    while sent < size:
        piece = min(700, size - sent)
        await r.write(bytes([65 + (sent // 700) % 26]) * piece)
        sent += piece
        await asyncio.sleep(0.05)  # separate TCP segments, separate reads
    await r.write_eof()
    return r


def _run(size: int) -> bytes:
    async def body() -> bytes:
        app = web.Application()
        app.router.add_get("/", _serve_in_pieces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as s:
                resp = await send(
                    s, f"http://127.0.0.1:{port}", HttpRequest("GET", f"/?size={size}")
                )
            assert resp.status == 200
            return resp.body
        finally:
            await runner.cleanup()

    return asyncio.run(body())


def test_body_in_pieces_is_read_whole() -> None:
    body = _run(3000)
    assert len(body) == 3000
    assert body == b"".join(bytes([65 + i % 26]) * min(700, 3000 - 700 * i) for i in range(5))


def test_oversized_body_is_cut() -> None:
    assert len(_run(MAX_RESPONSE + 5000)) == MAX_RESPONSE
