"""Open the GBA stores named by one store spec: an SQLite file path or a Redis URL.

``mbmsec hss --db SPEC``, ``mbmsec bsf --store SPEC`` and the ``[bsf] store`` key take either
form: ``mbmsec-gba.db`` (SQLite, the default) or ``redis://[:password@]host:port/db`` (also
``rediss://``, ``unix://``), with an optional ``?prefix=...`` for the key prefix.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigError
from .challenges import ChallengeStore, SqliteChallengeStore
from .protocols import BootstrapSessionStore, SubscriberStore
from .redis_gba import is_redis_url
from .sqlite_gba import SqliteBootstrapSessionStore, SqliteSubscriberStore

__all__ = [
    "describe_store",
    "is_redis_url",
    "open_challenge_store",
    "open_session_store",
    "open_subscriber_store",
]


def open_subscriber_store(spec: str) -> SubscriberStore:
    """HSS subscriber records at ``spec``. Raises ConfigError (also: Redis unreachable)."""
    if is_redis_url(spec):
        from .redis_gba import RedisSubscriberStore

        store = RedisSubscriberStore(spec)
        try:
            store.ping()
        except ConfigError:
            store.close()
            raise
        return store
    return SqliteSubscriberStore(Path(spec))


def open_session_store(spec: str) -> BootstrapSessionStore:
    """BSF bootstrapping sessions at ``spec``. Raises ConfigError."""
    if is_redis_url(spec):
        from .redis_gba import RedisBootstrapSessionStore

        return RedisBootstrapSessionStore(spec)
    return SqliteBootstrapSessionStore(Path(spec))


def open_challenge_store(spec: str, max_pending: int, max_per_impi: int) -> ChallengeStore:
    """Pending Ub challenges shared through ``spec`` (several BSF processes). ConfigError."""
    if is_redis_url(spec):
        from .redis_gba import RedisChallengeStore

        return RedisChallengeStore(spec, max_pending=max_pending, max_per_impi=max_per_impi)
    return SqliteChallengeStore(Path(spec), max_pending, max_per_impi)


def describe_store(spec: str) -> str:
    """``spec`` for logs and banners: a Redis URL without user name and password."""
    if not is_redis_url(spec):
        return spec
    parts = urlsplit(spec)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a malformed port: the store will refuse it on open
        port = None
    where = host + (f":{port}" if port else "") + parts.path
    prefix = [v for k, v in parse_qsl(parts.query) if k == "prefix"]
    return f"{parts.scheme}://{where}" + (f" (prefix {prefix[-1]})" if prefix else "")
