"""Redis GBA stores: what only Redis has (key layout and hash tags, raw bytes, TTLs, URL
handling) and atomicity across separate processes, each with its own connections.

The protocol behaviour shared with the memory and SQLite stores is in test_store_gba.py.
Runs when MBMSEC_REDIS_URL is set; skipped when unset, except under CI, where that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from mbmsec.errors import ConfigError
from mbmsec.gba.aka import next_sqn
from mbmsec.store.challenges import PendingChallenge
from mbmsec.store.protocols import BootstrapSession, Guss, Subscriber

K1 = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC1 = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")


def _redis_url() -> str:
    url = os.environ.get("MBMSEC_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without MBMSEC_REDIS_URL")
        pytest.skip("MBMSEC_REDIS_URL not set")
    return url


@pytest.fixture
def prefix() -> Iterator[str]:
    url = _redis_url()
    p = f"mbmsec-test:{uuid.uuid4().hex}:"
    yield p
    r = redis.Redis.from_url(url)
    for k in r.scan_iter(match=p + "*"):
        r.delete(k)
    r.close()


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(_redis_url())
    yield r
    r.close()


def sub(impi: str, sqn: int = 0) -> Subscriber:
    return Subscriber(impi=impi, k=K1, opc=OPC1, sqn=sqn, guss=Guss(("bmsc.x",), ("s1",)))


def ch(nonce: str, impi: str, expires: float) -> PendingChallenge:
    return PendingChallenge(
        nonce, impi, bytes(16), bytes(16), b"x" * 8, b"c" * 16, b"i" * 16, expires
    )


def test_one_slot_per_subscriber_and_secrets_as_bytes(prefix: str, raw: redis.Redis) -> None:
    from mbmsec.store.redis_gba import RedisChallengeStore, RedisSubscriberStore

    url = _redis_url()
    subs = RedisSubscriberStore(url, prefix=prefix)
    chs = RedisChallengeStore(url, prefix=prefix)
    impis = ["user1@home1.net", "}x{@y", "{a}b}@c", "%7D@z", "\u4e2d@x"]
    for i in impis:
        subs.add(sub(i))
        chs.put(ch("n-" + i, i, time.time() + 60), time.time())
    keys = [k.decode() for k in raw.scan_iter(match=prefix + "*")]
    groups: dict[str, list[str]] = {}
    for k in keys:
        if "{" in k:  # Redis Cluster rule: the slot is that of the first {...} tag
            start = k.index("{") + 1
            groups.setdefault(k[start : k.index("}", start)], []).append(k)
    assert len(groups) == len(impis)
    found = []
    for members in groups.values():
        assert len({key_slot(k.encode()) for k in members}) == 1
        sub_key = next(k for k in members if k.endswith(":sub"))
        impi = (raw.hget(sub_key, "impi") or b"").decode()
        found.append(impi)
        suffixes = sorted(k[k.index("}:") + 2 :] for k in members)
        assert suffixes == ["ch:n-" + impi, "chs", "sub"], members  # all of one subscriber
    assert sorted(found) == sorted(impis)
    key = next(k for k in keys if k.endswith(":sub") and "user1" in k)
    assert raw.hget(key, "k") == K1 and raw.hget(key, "opc") == OPC1  # raw bytes, not hex
    assert prefix in repr(subs)
    subs.close()
    chs.close()


def test_ttls_follow_the_record_lifetimes(prefix: str, raw: redis.Redis) -> None:
    from mbmsec.store.redis_gba import RedisBootstrapSessionStore, RedisChallengeStore

    url = _redis_url()
    sessions = RedisBootstrapSessionStore(url, prefix=prefix, retain=100.0)
    sessions.put(BootstrapSession("B@bsf", "a@x", bytes(32), bytes(16), 5000.0, 5000.0 + 3600))
    ttl = raw.pttl(f"{prefix}ses:{{B@bsf}}")
    assert 3699_000 < ttl <= 3700_000
    chs = RedisChallengeStore(url, prefix=prefix)
    chs.put(ch("n1", "a@x", 1060.0), 1000.0)  # virtual clock: the TTL is relative
    ttl = raw.pttl(f"{prefix}{{a@x}}:ch:n1")
    assert 60_000 < ttl <= 61_000
    assert chs.take("n1", "a@x", 1001.0) is not None
    assert raw.exists(f"{prefix}{{a@x}}:ch:n1") == 0
    sessions.close()
    chs.close()


def test_purge_when_redis_already_dropped_the_key(prefix: str, raw: redis.Redis) -> None:
    from mbmsec.store.redis_gba import RedisBootstrapSessionStore

    sessions = RedisBootstrapSessionStore(_redis_url(), prefix=prefix, retain=0.0)
    sessions.put(BootstrapSession("gone@bsf", "a@x", bytes(32), bytes(16), 10.0, 10.05))
    sessions.put(BootstrapSession("kept@bsf", "a@x", bytes(32), bytes(16), 10.0, 1e12))
    time.sleep(0.15)  # the server expired the first key by itself
    assert sessions.get("gone@bsf") is None
    assert sessions.purge_expired(100.0) == 0  # nothing left to delete, index entry dropped
    assert raw.zrange(prefix + "sessions", 0, -1) == [b"kept@bsf"]
    sessions.close()


def test_url_prefix_and_bad_settings(prefix: str) -> None:
    from mbmsec.store.redis_gba import RedisSubscriberStore, redis_client

    url = _redis_url()
    sep = "&" if "?" in url else "?"
    s = RedisSubscriberStore(f"{url}{sep}prefix={prefix}")
    assert s.prefix == prefix
    s.add(sub("a@x"))
    other = RedisSubscriberStore(url, prefix=prefix)
    assert other.get("a@x") == sub("a@x")
    s.close()
    other.close()
    with pytest.raises(ConfigError):
        RedisSubscriberStore(url, prefix="bad{tag}:")
    with pytest.raises(ConfigError) as e:
        redis_client("redis://:hunter2-pw@127.0.0.1:notaport/0")
    assert "hunter2" not in str(e.value)
    dead = RedisSubscriberStore("redis://:hunter2-pw@127.0.0.1:1/0")
    with pytest.raises(ConfigError) as e:
        dead.ping()
    assert "hunter2" not in str(e.value)
    dead.close()


_SQN_WORKER = """
import json, sys
from mbmsec.gba.aka import next_sqn
from mbmsec.store.redis_gba import RedisSubscriberStore
s = RedisSubscriberStore(sys.argv[1], prefix=sys.argv[2])
out = []
for _ in range(int(sys.argv[3])):
    out.append(s.advance_sqn("a@x", next_sqn).sqn)
print(json.dumps(out))
"""

_TAKE_WORKER = """
import json, sys, time
from mbmsec.store.redis_gba import RedisChallengeStore
s = RedisChallengeStore(sys.argv[1], prefix=sys.argv[2])
n = int(sys.argv[3])
won = [i for i in range(n) if s.take(f"n{i}", "a@x", time.time()) is not None]
print(json.dumps(won))
"""


def _run_workers(code: str, args: list[str], count: int) -> list[list[int]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        out.append(json.loads(stdout))
    return out


def test_advance_sqn_is_atomic_across_processes(prefix: str) -> None:
    from mbmsec.store.redis_gba import RedisSubscriberStore

    url = _redis_url()
    s = RedisSubscriberStore(url, prefix=prefix)
    s.add(sub("a@x"))
    results = _run_workers(_SQN_WORKER, [url, prefix, "60"], 4)
    for r in results:
        assert r == sorted(r) and len(set(r)) == len(r)  # each process sees its SQNs rise
    issued = sorted(q for r in results for q in r)
    chain = [next_sqn(0)]
    while len(chain) < 240:
        chain.append(next_sqn(chain[-1]))
    assert issued == chain  # no SQN twice, none lost
    got = s.get("a@x")
    assert got is not None and got.sqn == chain[-1] and got.k == K1
    s.close()


def test_challenge_taken_once_across_processes(prefix: str) -> None:
    from mbmsec.store.redis_gba import RedisChallengeStore

    url = _redis_url()
    s = RedisChallengeStore(url, prefix=prefix, max_per_impi=1000)
    now = time.time()
    for i in range(150):
        s.put(ch(f"n{i}", "a@x", now + 120), now)
    results = _run_workers(_TAKE_WORKER, [url, prefix, "150"], 4)
    won = sorted(i for r in results for i in r)
    assert won == list(range(150))  # every nonce taken exactly once
    assert s.purge_expired(now + 1000) == 0
    s.close()


def test_advance_sqn_on_a_removed_subscriber(prefix: str) -> None:
    from mbmsec.store.redis_gba import RedisSubscriberStore

    s = RedisSubscriberStore(_redis_url(), prefix=prefix)
    s.add(sub("a@x", sqn=64))
    seen: list[int] = []

    def advance(q: int) -> int:
        seen.append(q)
        if len(seen) == 1:  # another worker removes and re-adds it meanwhile (new K)
            s.remove("a@x")
            s.add(Subscriber("a@x", bytes(16), OPC1, sqn=64))
        return q + 32

    after = s.advance_sqn("a@x", advance)
    assert seen == [64, 64]  # the compare-and-set saw the new record and re-read it
    assert after is not None and after.k == bytes(16) and after.sqn == 96
    s.close()
