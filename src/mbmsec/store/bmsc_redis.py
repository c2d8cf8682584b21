"""Redis BM-SC store (redis-py): shared state for many BM-SC workers and hosts.

Key layout under ``prefix`` (default ``mbmsec:bmsc:``)::

    svc:<service_id>            JSON service record         svcs                 set of IDs
    msk:<kd hex>:<msk id hex>   JSON MSK record             svcmsks:<service_id> zset, valid_from
    mtk:<kd hex>:<msk id hex>   hash MTK ID -> JSON MTK record
    ctr:<name>                  COUNTER high-water mark (integer)
    reg:<service_id>            hash IMPI -> JSON registration
    dlv:<btid>:<csb id>         JSON delivery record        dlvmsk:<kd>:<msk>    zset, sent_at
    lease:<name>                holder (string) with a PX expiry (the leader lease)
    members:<group>             zset member -> lease end (unicast fan-out membership)

Multi-key writes run in one MULTI/EXEC transaction; the COUNTER reservation is one Lua script,
so it is atomic across workers. The leader lease is ``SET NX PX`` semantics in one Lua script
(take when absent, renew when held by the same holder); its expiry runs on the Redis server's
clock, so workers on several hosts need no clock agreement. Durability is the Redis server's:
run it with ``appendonly yes`` and ``appendfsync always`` when a COUNTER must survive a server
crash (a reservation is acknowledged only after the write reached the append-only file then).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Final, cast

import redis

from ..errors import ConfigError, CounterExhaustedError
from ..mbms.keys import MskId, MskRef
from ..mikey.replay import COUNTER_MAX
from .bmsc_protocols import (
    DeliveryRecord,
    MskRecord,
    MtkRecord,
    Registration,
    ServiceRecord,
    counter_name_msk,
)
from .bmsc_sqlite import service_from_json, service_to_json

__all__ = ["RedisBmscStore"]

_RESERVE: Final = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = cur + tonumber(ARGV[1])
if new > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], new)
return new
"""


_ACQUIRE: Final = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _refkey(ref: MskRef) -> str:
    return f"{ref.key_domain_id.hex()}:{ref.msk_id.value:08x}"


def _msk_json(m: MskRecord) -> str:
    return json.dumps(
        {
            "kd": m.ref.key_domain_id.hex(),
            "msk_id": m.ref.msk_id.value,
            "service_id": m.service_id,
            "key": m.key.hex(),
            "valid_from": m.valid_from,
            "valid_until": m.valid_until,
            "first": m.mtk_id_first,
            "last": m.mtk_id_last,
        }
    )


def _msk_from(text: str | bytes) -> MskRecord:
    d = json.loads(text)
    ref = MskRef(bytes.fromhex(d["kd"]), MskId.from_int(d["msk_id"]))
    return MskRecord(
        ref,
        d["service_id"],
        bytes.fromhex(d["key"]),
        d["valid_from"],
        d["valid_until"],
        d["first"],
        d["last"],
    )


def _delivery_json(d: DeliveryRecord) -> str:
    return json.dumps(
        {
            "btid": d.btid,
            "csb_id": d.csb_id,
            "kd": d.msk.key_domain_id.hex(),
            "msk_id": d.msk.msk_id.value,
            "counter": d.counter,
            "sent_at": d.sent_at,
            "impi": d.impi,
            "confirmed_at": d.confirmed_at,
            "message": None if d.message is None else d.message.hex(),
        }
    )


def _delivery_from(text: str | bytes) -> DeliveryRecord:
    d = json.loads(text)
    ref = MskRef(bytes.fromhex(d["kd"]), MskId.from_int(d["msk_id"]))
    msg = d.get("message")
    return DeliveryRecord(
        d["btid"],
        d["csb_id"],
        ref,
        d["counter"],
        d["sent_at"],
        d["impi"],
        d["confirmed_at"],
        None if msg is None else bytes.fromhex(msg),
    )


REDIS_TIMEOUT = 5.0  # seconds, per socket operation (URL query parameters override it)


class RedisBmscStore:
    """The :class:`~.bmsc_protocols.BmscStore` protocol over a Redis server."""

    def __init__(self, url: str, prefix: str = "mbmsec:bmsc:") -> None:
        try:
            # bounded waits: a hung Redis server raises a RedisError instead of stalling a worker
            self._r: redis.Redis = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL: {exc}") from exc
        self.prefix = prefix
        self._reserve = self._r.register_script(_RESERVE)
        self._acquire = self._r.register_script(_ACQUIRE)
        self._release = self._r.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisBmscStore(prefix={self.prefix!r})"

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _get(self, key: str) -> bytes | None:
        return cast(bytes | None, self._r.get(key))

    # services
    def put_service(self, service: ServiceRecord) -> None:
        p = self._r.pipeline(transaction=True)
        p.set(self._k("svc", service.service_id), service_to_json(service))
        p.sadd(self._k("svcs"), service.service_id)
        p.execute()

    def get_service(self, service_id: str) -> ServiceRecord | None:
        v = self._get(self._k("svc", service_id))
        return None if v is None else service_from_json(v.decode())

    def services(self) -> list[ServiceRecord]:
        ids = sorted(x.decode() for x in cast(set[bytes], self._r.smembers(self._k("svcs"))))
        out = [self.get_service(i) for i in ids]
        return [s for s in out if s is not None]

    def remove_service(self, service_id: str) -> bool:
        p = self._r.pipeline(transaction=True)
        p.delete(self._k("svc", service_id))
        p.srem(self._k("svcs"), service_id)
        n, _ = p.execute()
        return bool(n)

    # keys
    def put_msk(self, msk: MskRecord) -> None:
        p = self._r.pipeline(transaction=True)
        p.set(self._k("msk", _refkey(msk.ref)), _msk_json(msk))
        p.zadd(self._k("svcmsks", msk.service_id), {_refkey(msk.ref): msk.valid_from})
        p.execute()

    def get_msk(self, ref: MskRef) -> MskRecord | None:
        v = self._get(self._k("msk", _refkey(ref)))
        return None if v is None else _msk_from(v)

    def msks_for_service(self, service_id: str) -> list[MskRecord]:
        members = cast(list[bytes], self._r.zrange(self._k("svcmsks", service_id), 0, -1))
        if not members:
            return []
        vals = cast(list[bytes | None], self._r.mget([self._k("msk", m.decode()) for m in members]))
        found = [_msk_from(v) for v in vals if v is not None]
        return sorted(found, key=lambda m: (m.valid_from, m.ref))

    def put_mtk(self, mtk: MtkRecord) -> None:
        rec = {
            "key": mtk.key.hex(),
            "salt": None if mtk.salt is None else mtk.salt.hex(),
            "valid_from": mtk.valid_from,
            "valid_until": mtk.valid_until,
        }
        self._r.hset(self._k("mtk", _refkey(mtk.msk)), str(mtk.mtk_id), json.dumps(rec))

    def mtks_for_msk(self, ref: MskRef) -> list[MtkRecord]:
        h = cast(dict[bytes, bytes], self._r.hgetall(self._k("mtk", _refkey(ref))))
        out = []
        for k, v in h.items():
            d: dict[str, Any] = json.loads(v)
            salt = None if d["salt"] is None else bytes.fromhex(d["salt"])
            out.append(
                MtkRecord(
                    ref,
                    int(k),
                    bytes.fromhex(d["key"]),
                    salt,
                    d["valid_from"],
                    d["valid_until"],
                )
            )
        return sorted(out, key=lambda m: m.mtk_id)

    def purge_keys(self, before: float) -> int:
        n = 0
        for sid in cast(set[bytes], self._r.smembers(self._k("svcs"))) | self._msk_services():
            for m in self.msks_for_service(sid.decode()):
                if m.valid_until < before:
                    rk = _refkey(m.ref)
                    p = self._r.pipeline(transaction=True)
                    p.delete(self._k("msk", rk), self._k("mtk", rk))
                    p.delete(self._k("ctr", counter_name_msk(m.ref)))
                    p.zrem(self._k("svcmsks", m.service_id), rk)
                    p.execute()
                    n += 1
        return n

    def _msk_services(self) -> set[bytes]:
        plen = len(self._k("svcmsks", ""))
        keys = cast(list[bytes], list(self._r.scan_iter(match=self._k("svcmsks", "*"))))
        return {k[plen:] for k in keys}

    # counters
    def reserve_counter(self, name: str, block: int) -> int:
        if block < 1:
            raise ConfigError("counter block must be at least 1")
        new = int(cast(int, self._reserve(keys=[self._k("ctr", name)], args=[block, COUNTER_MAX])))
        if new < 0:
            raise CounterExhaustedError(f"counter {name!r} cannot grow by {block}; replace the key")
        return new

    def get_counter(self, name: str) -> int:
        v = self._get(self._k("ctr", name))
        return 0 if v is None else int(v)

    # registrations
    def put_registration(self, reg: Registration) -> None:
        rec = [reg.impi, reg.service_id, reg.btid, reg.push_host, reg.push_port, reg.registered_at]
        self._r.hset(self._k("reg", reg.service_id), reg.impi, json.dumps(rec))

    def get_registration(self, impi: str, service_id: str) -> Registration | None:
        v = cast(bytes | None, self._r.hget(self._k("reg", service_id), impi))
        return None if v is None else Registration(*json.loads(v))

    def remove_registration(self, impi: str, service_id: str) -> bool:
        return bool(self._r.hdel(self._k("reg", service_id), impi))

    def registrations_for_service(self, service_id: str) -> list[Registration]:
        h = cast(dict[bytes, bytes], self._r.hgetall(self._k("reg", service_id)))
        return sorted((Registration(*json.loads(v)) for v in h.values()), key=lambda r: r.impi)

    # deliveries
    def put_delivery(self, rec: DeliveryRecord) -> None:
        p = self._r.pipeline(transaction=True)
        member = f"{rec.btid}|{rec.csb_id}"
        p.set(self._k("dlv", rec.btid, str(rec.csb_id)), _delivery_json(rec))
        p.zadd(self._k("dlvmsk", _refkey(rec.msk)), {member: rec.sent_at})
        p.execute()

    def confirm_delivery(self, btid: str, csb_id: int, when: float) -> bool:
        key = self._k("dlv", btid, str(csb_id))
        with self._r.pipeline(transaction=True) as p:
            while True:
                try:
                    p.watch(key)  # type: ignore[no-untyped-call]
                    v = cast(bytes | None, p.get(key))
                    if v is None:
                        p.unwatch()
                        return False
                    rec = _delivery_from(v)
                    if rec.confirmed_at is not None:
                        p.unwatch()
                        return True
                    p.multi()
                    p.set(key, _delivery_json(replace(rec, confirmed_at=when)))
                    p.execute()
                    return True
                except redis.WatchError:
                    continue

    def get_delivery(self, btid: str, csb_id: int) -> DeliveryRecord | None:
        v = self._get(self._k("dlv", btid, str(csb_id)))
        return None if v is None else _delivery_from(v)

    def deliveries_for_msk(self, ref: MskRef) -> list[DeliveryRecord]:
        members = cast(list[bytes], self._r.zrange(self._k("dlvmsk", _refkey(ref)), 0, -1))
        out = []
        for m in members:
            btid, _, csb = m.decode().rpartition("|")
            d = self.get_delivery(btid, int(csb))
            if d is not None:
                out.append(d)
        return sorted(out, key=lambda d: (d.sent_at, d.btid, d.csb_id))

    # fan-out membership
    def add_group_members(self, group: str, members: dict[str, float]) -> None:
        if not members:
            return
        self._r.zadd(self._k("members", group), members, gt=True)  # renewal: the later end

    def group_members(self, group: str, now: float) -> dict[str, float]:
        key = self._k("members", group)
        self._r.zremrangebyscore(key, "-inf", now)
        rows = cast(
            list[tuple[bytes, float]],
            self._r.zrangebyscore(key, f"({now}", "+inf", withscores=True),
        )
        return {m.decode(): float(u) for m, u in rows}

    # leadership
    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        ms = max(1, int(ttl * 1000))
        return bool(self._acquire(keys=[self._k("lease", name)], args=[holder, ms]))

    def release_lease(self, name: str, holder: str) -> None:
        self._release(keys=[self._k("lease", name)], args=[holder])

    def lease_holder(self, name: str, now: float) -> str | None:
        v = self._get(self._k("lease", name))
        return None if v is None else v.decode()

    def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        for k in self._r.scan_iter(match=self.prefix + "*"):
            self._r.delete(k)

    def close(self) -> None:
        self._r.close()
