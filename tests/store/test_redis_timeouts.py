"""A Redis server that accepts connections but never answers ends in a RedisError, not a hang."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from mbmsec.store import bmsc_redis, redis_gba
from mbmsec.store.bmsc_redis import RedisBmscStore
from mbmsec.store.redis_gba import RedisSubscriberStore


@pytest.fixture
def silent_server() -> object:
    """A loopback TCP server that accepts and then says nothing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_silent_redis_times_out(
    silent_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bmsc_redis, "REDIS_TIMEOUT", 0.3)
    monkeypatch.setattr(redis_gba, "REDIS_TIMEOUT", 0.3)
    host, port = silent_server
    url = f"redis://{host}:{port}/0"
    for call in (
        lambda: RedisBmscStore(url).services(),
        lambda: RedisSubscriberStore(url).get("a@x"),
    ):
        start = time.monotonic()
        with pytest.raises(redis.RedisError):
            call()
        assert time.monotonic() - start < 5
