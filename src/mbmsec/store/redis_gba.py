"""Redis GBA stores (redis-py): subscribers, bootstrapping sessions and pending Ub challenges
shared by many BSF workers and hosts.

Key layout under ``prefix`` (default ``mbmsec:gba:``); ``{...}`` is a Redis Cluster hash tag,
so every key of one subscriber lands in one slot and each atomic step touches one slot::

    {<impi>}:sub            hash  impi, k, opc, sqn, amf, guss (JSON), uicc   (K, OPc as bytes)
    {<impi>}:ch:<nonce>     hash  one pending challenge (RAND, AUTN, XRES, CK, IK, expires ...)
    {<impi>}:chs            zset  that IMPI's pending nonces, score = expires
    ses:{<btid>}            hash  one session (impi, ks, rand, created, expires, gba_u)
    subs                    set   every IMPI (for ``all()``)
    sessions                zset  B-TID -> expires (for ``purge_expired``)
    challenges              zset  JSON [impi, nonce] -> expires (global bound, purge)

In a tag, ``%``, ``{`` and ``}`` of the IMPI / B-TID are written ``%25``, ``%7B``, ``%7D``.

Atomicity: the SQN advance is a compare-and-set Lua script on the subscriber key (re-read and
retried when another worker won), so two workers never issue the same SQN; ``add_many`` checks
every IMPI under WATCH and writes all records in one MULTI/EXEC (all or none); a challenge is
taken by one Lua script (HGETALL + DEL), so an answer is accepted once across all workers. The
index keys (``subs``, ``sessions``, ``challenges``) are updated next to these steps; they only
drive listing, purging and the global challenge bound, and a stale entry is harmless.
``add_many`` is the one multi-slot transaction: on a Redis Cluster import subscribers one by one.

Expiry: a session key lives for its own lifetime (``expires - created``) plus ``retain``
seconds, a challenge key until its ``expires`` plus a second, counted from the write on the
server's clock (PEXPIRE, not PEXPIREAT: the BSF's ``now`` is injected and may be virtual);
``purge_expired(now)`` deletes earlier by the injected clock. Durability is the Redis server's:
run it with ``appendonly yes`` and ``appendfsync always`` when an SQN must survive a server
crash. Nothing here logs; key bytes never appear in a repr or an error message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from ..errors import ConfigError, DuplicateEntryError
from .challenges import DEFAULT_MAX_PENDING, DEFAULT_MAX_PER_IMPI, PendingChallenge, check_bounds
from .protocols import SQN_MAX, BootstrapSession, Subscriber
from .sqlite_gba import _guss_from_json, _guss_to_json

__all__ = [
    "DEFAULT_PREFIX",
    "RedisBootstrapSessionStore",
    "RedisChallengeStore",
    "RedisSubscriberStore",
    "is_redis_url",
    "redis_client",
]

DEFAULT_PREFIX = "mbmsec:gba:"
SESSION_RETAIN = 600.0  # seconds an expired session stays readable before Redis drops it

_CAS_SQN: Final = """
local cur = redis.call('HMGET', KEYS[1], 'sqn', 'k')
if not cur[1] then return -1 end
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'sqn', ARGV[2])
return 1
"""

_SET_SQN: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'sqn', ARGV[1])
return 1
"""

_TAKE: Final = """
local v = redis.call('HGETALL', KEYS[1])
if #v > 0 then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return v
"""

_PURGE_SESSION: Final = """
local e = redis.call('HGET', KEYS[1], 'expires')
if not e then return 0 end
if tonumber(e) <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return 1 end
return -1
"""


def is_redis_url(spec: str) -> bool:
    """True when a store spec names a Redis server rather than an SQLite file."""
    return spec.startswith(("redis://", "rediss://", "unix://"))


REDIS_TIMEOUT = 5.0  # seconds, per socket operation (URL query parameters override it)


def redis_client(url: str) -> tuple[redis.Redis, str]:
    """Connect lazily to ``url``; return the client and the key prefix.

    The prefix comes from a ``prefix`` query parameter (``redis://h:6379/0?prefix=site1:``),
    default :data:`DEFAULT_PREFIX`. Raises ConfigError for a malformed URL (the message never
    repeats the URL: it may hold a password).
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    rest = []
    for k, v in query:
        if k == "prefix":
            prefix = v
        else:
            rest.append((k, v))
    clean = urlunsplit(parts._replace(query=urlencode(rest)))
    try:
        # bounded waits: a hung Redis server raises a RedisError instead of stalling the BSF
        client = redis.Redis.from_url(
            clean, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL: {exc}") from None
    return client, prefix


def _esc(s: str) -> str:
    return s.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


class _RedisBase:
    """Connection and key naming shared by the three stores."""

    def __init__(self, url: str | redis.Redis, prefix: str | None) -> None:
        if isinstance(url, str):
            self._r, url_prefix = redis_client(url)
            self._own = True
        else:
            self._r, url_prefix, self._own = url, DEFAULT_PREFIX, False
        self.prefix = url_prefix if prefix is None else prefix
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigError("Redis key prefix must not contain '{' or '}'")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"

    def _ik(self, impi: str, suffix: str) -> str:
        """A key in the IMPI's slot."""
        return f"{self.prefix}{{{_esc(impi)}}}:{suffix}"

    def ping(self) -> None:
        """Check that the server answers. Raises ConfigError (without the URL) when not."""
        try:
            self._r.ping()
        except redis.RedisError as exc:
            raise ConfigError(f"Redis store unreachable: {type(exc).__name__}") from None

    def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        pattern = "".join("\\" + ch if ch in "\\*?[]" else ch for ch in self.prefix) + "*"
        for k in self._r.scan_iter(match=pattern, count=1000):
            self._r.delete(k)

    def close(self) -> None:
        """Close the connection pool (when this store opened it)."""
        if self._own:
            self._r.close()


def _sub_mapping(s: Subscriber) -> dict[str, bytes | str]:
    return {
        "impi": s.impi,
        "k": s.k,
        "opc": s.opc,
        "sqn": str(s.sqn),
        "amf": s.amf,
        "guss": _guss_to_json(s.guss),
        "uicc": "1" if s.uicc else "0",
    }


def _sub_from(h: dict[bytes, bytes]) -> Subscriber:
    return Subscriber(
        impi=h[b"impi"].decode(),
        k=h[b"k"],
        opc=h[b"opc"],
        sqn=int(h[b"sqn"]),
        amf=h[b"amf"],
        guss=_guss_from_json(h[b"guss"].decode()),
        uicc=h[b"uicc"] == b"1",
    )


class RedisSubscriberStore(_RedisBase):
    """The :class:`~.protocols.SubscriberStore` protocol over Redis (one hash per IMPI)."""

    def __init__(self, url: str | redis.Redis, prefix: str | None = None) -> None:
        super().__init__(url, prefix)
        self._cas = self._r.register_script(_CAS_SQN)
        self._set = self._r.register_script(_SET_SQN)

    def add(self, subscriber: Subscriber) -> None:
        """Insert a new record. Raises DuplicateEntryError when the IMPI exists."""
        self.add_many([subscriber])

    def add_many(self, subscribers: Sequence[Subscriber]) -> None:
        """Insert all records in one MULTI/EXEC after a WATCHed existence check, or none.

        Raises DuplicateEntryError on an IMPI already stored or repeated in ``subscribers``.
        """
        seen: set[str] = set()
        for s in subscribers:
            if s.impi in seen:
                raise DuplicateEntryError(f"IMPI already provisioned: {s.impi}")
            seen.add(s.impi)
        if not subscribers:
            return
        keys = [self._ik(s.impi, "sub") for s in subscribers]
        with self._r.pipeline(transaction=True) as p:
            while True:
                try:
                    p.watch(*keys)  # type: ignore[no-untyped-call]
                    if p.exists(*keys):
                        for s, k in zip(subscribers, keys, strict=True):
                            if p.exists(k):
                                p.unwatch()
                                raise DuplicateEntryError(f"IMPI already provisioned: {s.impi}")
                    p.multi()
                    for s, k in zip(subscribers, keys, strict=True):
                        p.hset(k, mapping=_sub_mapping(s))  # type: ignore[arg-type]
                    p.sadd(self.prefix + "subs", *(s.impi for s in subscribers))
                    p.execute()
                    return
                except redis.WatchError:
                    continue

    def get(self, impi: str) -> Subscriber | None:
        """Return the record for ``impi`` or None."""
        h = cast(dict[bytes, bytes], self._r.hgetall(self._ik(impi, "sub")))
        return _sub_from(h) if h else None

    def remove(self, impi: str) -> bool:
        """Delete the record; return False when there was none."""
        p = self._r.pipeline(transaction=False)
        p.delete(self._ik(impi, "sub"))
        p.srem(self.prefix + "subs", impi)
        n, _ = p.execute()
        return bool(n)

    def all(self) -> list[Subscriber]:
        """Every record, ordered by IMPI (code point order, as SQLite sorts)."""
        members = cast(set[bytes], self._r.smembers(self.prefix + "subs"))
        impis = sorted(m.decode() for m in members)
        p = self._r.pipeline(transaction=False)
        for impi in impis:
            p.hgetall(self._ik(impi, "sub"))
        return [_sub_from(h) for h in p.execute() if h]

    def advance_sqn(self, impi: str, advance: Callable[[int], int]) -> Subscriber | None:
        """Atomically replace SQN_HE by ``advance(SQN_HE)`` (compare-and-set, retried)."""
        key = self._ik(impi, "sub")
        while True:
            h = cast(dict[bytes, bytes], self._r.hgetall(key))
            if not h:
                return None
            sub = _sub_from(h)
            new = replace(sub, sqn=advance(sub.sqn))  # ValueError past 48 bits: unchanged
            done = int(cast(int, self._cas(keys=[key], args=[h[b"sqn"], str(new.sqn), sub.k])))
            if done == 1:
                return new
            if done == -1:
                return None

    def set_sqn(self, impi: str, sqn: int) -> bool:
        """Set SQN_HE; return False when the IMPI is unknown. ValueError if not 48-bit."""
        if not 0 <= sqn <= SQN_MAX:
            raise ValueError("SQN must fit in 48 bits")
        return bool(self._set(keys=[self._ik(impi, "sub")], args=[str(sqn)]))


def _session_from(btid: str, h: dict[bytes, bytes]) -> BootstrapSession:
    return BootstrapSession(
        btid=btid,
        impi=h[b"impi"].decode(),
        ks=h[b"ks"],
        rand=h[b"rand"],
        created=float(h[b"created"]),
        expires=float(h[b"expires"]),
        gba_u=h[b"gba_u"] == b"1",
    )


class RedisBootstrapSessionStore(_RedisBase):
    """The :class:`~.protocols.BootstrapSessionStore` protocol over Redis (one hash per B-TID).

    A session key expires ``retain`` seconds after the session does (see the module text).
    """

    def __init__(
        self, url: str | redis.Redis, prefix: str | None = None, retain: float = SESSION_RETAIN
    ) -> None:
        super().__init__(url, prefix)
        self.retain = retain
        self._purge = self._r.register_script(_PURGE_SESSION)

    def _key(self, btid: str) -> str:
        return f"{self.prefix}ses:{{{_esc(btid)}}}"

    def put(self, session: BootstrapSession) -> None:
        """Insert or replace the session with this B-TID."""
        s = session
        key = self._key(s.btid)
        ttl_ms = max(1, math.ceil((s.expires - s.created + self.retain) * 1000))
        p = self._r.pipeline(transaction=True)
        p.delete(key)
        p.hset(
            key,
            mapping={
                "impi": s.impi,
                "ks": s.ks,
                "rand": s.rand,
                "created": repr(float(s.created)),
                "expires": repr(float(s.expires)),
                "gba_u": "1" if s.gba_u else "0",
            },
        )
        p.pexpire(key, ttl_ms)
        p.execute()
        self._r.zadd(self.prefix + "sessions", {s.btid: s.expires})

    def get(self, btid: str) -> BootstrapSession | None:
        """Return the session for ``btid`` (even when expired, for ``retain`` s) or None."""
        h = cast(dict[bytes, bytes], self._r.hgetall(self._key(btid)))
        return _session_from(btid, h) if h else None

    def delete(self, btid: str) -> bool:
        """Delete the session; return False when there was none."""
        n = int(self._r.delete(self._key(btid)))
        self._r.zrem(self.prefix + "sessions", btid)
        return n > 0

    def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``; return how many were deleted."""
        index = self.prefix + "sessions"
        btids = [b.decode() for b in cast(list[bytes], self._r.zrangebyscore(index, "-inf", now))]
        if not btids:
            return 0
        p = self._r.pipeline(transaction=False)
        for b in btids:
            self._purge(keys=[self._key(b)], args=[repr(float(now))], client=p)
        results = [int(x) for x in p.execute()]
        gone = [b for b, r in zip(btids, results, strict=True) if r >= 0]  # not re-put since
        if gone:
            self._r.zrem(index, *gone)
        return sum(1 for r in results if r == 1)


_CH_FIELDS = ("impi", "rand", "autn", "xres", "ck", "ik", "expires", "gba_u")


class RedisChallengeStore(_RedisBase):
    """The :class:`~.challenges.ChallengeStore` protocol over Redis (one hash per nonce).

    The per-IMPI bound is exact up to concurrent writers for the same IMPI (two of them may
    each displace one); the global bound is kept by a separate index and may be exceeded by
    the number of concurrent writers for an instant.
    """

    def __init__(
        self,
        url: str | redis.Redis,
        prefix: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_per_impi: int = DEFAULT_MAX_PER_IMPI,
    ) -> None:
        super().__init__(url, prefix)
        check_bounds(max_pending, max_per_impi)
        self.max_pending = max_pending
        self.max_per_impi = max_per_impi
        self._take = self._r.register_script(_TAKE)

    def _member(self, impi: str, nonce: str) -> str:
        return json.dumps([impi, nonce])

    def _forget(self, members: list[tuple[str, str]]) -> int:
        """Delete these (impi, nonce) challenges and their index entries; return keys deleted."""
        if not members:
            return 0
        p = self._r.pipeline(transaction=False)
        for impi, nonce in members:
            p.delete(self._ik(impi, "ch:" + nonce))
            p.zrem(self._ik(impi, "chs"), nonce)
        p.zrem(self.prefix + "challenges", *(self._member(i, n) for i, n in members))
        return sum(int(x) for x in p.execute()[0:-1:2])

    def put(self, challenge: PendingChallenge, now: float) -> int:
        """Store ``challenge``; return how many live challenges were displaced."""
        c = challenge
        if c.expires <= now:
            return 0
        ttl_ms = math.ceil((c.expires - now) * 1000) + 1000
        key, index = self._ik(c.impi, "ch:" + c.nonce), self._ik(c.impi, "chs")
        p = self._r.pipeline(transaction=True)  # one slot: the IMPI's
        p.delete(key)
        p.hset(
            key,
            mapping={
                "impi": c.impi,
                "rand": c.rand,
                "autn": c.autn,
                "xres": c.xres,
                "ck": c.ck,
                "ik": c.ik,
                "expires": repr(float(c.expires)),
                "gba_u": "1" if c.gba_u else "0",
            },
        )
        p.pexpire(key, ttl_ms)
        p.zremrangebyscore(index, "-inf", now)
        p.zadd(index, {c.nonce: c.expires})
        p.pexpire(index, ttl_ms)
        p.zcard(index)
        mine = int(p.execute()[-1])
        victims: list[tuple[str, str]] = []
        if mine > self.max_per_impi:
            popped = cast(
                list[tuple[bytes, float]], self._r.zpopmin(index, mine - self.max_per_impi)
            )
            victims += [(c.impi, m.decode()) for m, _ in popped]
        glob = self.prefix + "challenges"
        p = self._r.pipeline(transaction=False)
        p.zremrangebyscore(glob, "-inf", now)
        p.zadd(glob, {self._member(c.impi, c.nonce): c.expires})
        p.zcard(glob)
        total = int(p.execute()[-1])
        if total > self.max_pending:
            popped = cast(
                list[tuple[bytes, float]], self._r.zpopmin(glob, total - self.max_pending)
            )
            for m, _ in popped:
                impi, nonce = json.loads(m)
                victims.append((str(impi), str(nonce)))
        return self._forget(victims)

    def take(self, nonce: str, impi: str, now: float) -> PendingChallenge | None:
        """Remove and return the live challenge in one Lua script (single use everywhere)."""
        flat = cast(
            list[bytes],
            self._take(keys=[self._ik(impi, "ch:" + nonce), self._ik(impi, "chs")], args=[nonce]),
        )
        if not flat:
            return None
        self._r.zrem(self.prefix + "challenges", self._member(impi, nonce))
        h = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        if any(f not in h for f in _CH_FIELDS) or h["impi"].decode() != impi:
            return None
        expires = float(h["expires"])
        if expires <= now:
            return None
        return PendingChallenge(
            nonce=nonce,
            impi=impi,
            rand=h["rand"],
            autn=h["autn"],
            xres=h["xres"],
            ck=h["ck"],
            ik=h["ik"],
            expires=expires,
            gba_u=h["gba_u"] == b"1",
        )

    def purge_expired(self, now: float) -> int:
        """Delete every challenge expired at ``now``; return how many keys were deleted."""
        members = cast(list[bytes], self._r.zrangebyscore(self.prefix + "challenges", "-inf", now))
        pairs = []
        for m in members:
            impi, nonce = json.loads(m)
            pairs.append((str(impi), str(nonce)))
        return self._forget(pairs)
