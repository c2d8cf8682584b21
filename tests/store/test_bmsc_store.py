"""BM-SC and UE store tests, run against every implementation.

The Redis store runs when MBMSEC_REDIS_URL is set; it is skipped when unset, except under CI
(CI set), where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbmsec.errors import ConfigError, CounterExhaustedError
from mbmsec.mbms.keys import MskId, MskRef
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.bmsc_protocols import (
    BmscStore,
    DeliveryRecord,
    MskRecord,
    MtkRecord,
    Registration,
    ServiceRecord,
    counter_name_msk,
    counter_name_muk,
)
from mbmsec.store.bmsc_sqlite import SqliteBmscStore
from mbmsec.store.ue_keys import MemoryUeKeyStore, UeKeyStore, UeMskRecord, UeMtkRecord, UeMukRecord
from mbmsec.store.ue_sqlite import SqliteUeKeyStore

KD = bytes.fromhex("62f210")
REF = MskRef(KD, MskId(1, 1))
REF2 = MskRef(KD, MskId(1, 2))
SVC = ServiceRecord("urn:svc:a", KD, 1, "239.1.1.1", 5000, msk_lifetime=100, mtk_lifetime=10)


def _redis_url() -> str:
    url = os.environ.get("MBMSEC_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without MBMSEC_REDIS_URL")
        pytest.skip("MBMSEC_REDIS_URL not set")
    return url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BmscStore]:
    s: BmscStore
    if request.param == "memory":
        s = MemoryBmscStore()
    elif request.param == "sqlite":
        s = SqliteBmscStore(tmp_path / "bmsc.db")
    else:
        from mbmsec.store.bmsc_redis import RedisBmscStore

        s = RedisBmscStore(_redis_url(), prefix=f"mbmsec-test:{uuid.uuid4().hex}:")
    yield s
    if request.param == "redis":
        s.flush()  # type: ignore[attr-defined]
    s.close()


def test_protocol_conformance(store: BmscStore) -> None:
    assert isinstance(store, BmscStore)


def test_services(store: BmscStore) -> None:
    assert store.get_service("urn:svc:a") is None
    store.put_service(SVC)
    other = ServiceRecord("urn:svc:b", KD, 2, "239.1.1.2", 5002, allowed_users=("u@x",))
    store.put_service(other)
    assert store.get_service("urn:svc:a") == SVC
    assert store.services() == [SVC, other]
    assert store.remove_service("urn:svc:a") and not store.remove_service("urn:svc:a")
    assert store.services() == [other]


def test_keys_and_purge(store: BmscStore) -> None:
    m1 = MskRecord(REF, SVC.service_id, bytes(16), 0.0, 100.0, 1, 10)
    m2 = MskRecord(REF2, SVC.service_id, bytes(range(16)), 100.0, 200.0, 1, 10)
    store.put_msk(m2)
    store.put_msk(m1)
    assert store.get_msk(REF) == m1
    assert store.msks_for_service(SVC.service_id) == [m1, m2]
    t1 = MtkRecord(REF, 2, bytes([2]) * 16, bytes(14), 10.0, 20.0)
    t0 = MtkRecord(REF, 1, bytes([1]) * 16, None, 0.0, 10.0)
    store.put_mtk(t1)
    store.put_mtk(t0)
    store.put_mtk(MtkRecord(REF2, 1, bytes(16), None, 100.0, 110.0))
    assert store.mtks_for_msk(REF) == [t0, t1]
    store.reserve_counter(counter_name_msk(REF), 5)
    assert store.purge_keys(150.0) == 1
    assert store.get_msk(REF) is None and store.mtks_for_msk(REF) == []
    assert store.get_counter(counter_name_msk(REF)) == 0
    assert store.get_msk(REF2) == m2 and len(store.mtks_for_msk(REF2)) == 1


def test_counters(store: BmscStore) -> None:
    name = counter_name_muk("btid@bsf")
    assert store.get_counter(name) == 0
    assert store.reserve_counter(name, 1) == 1
    assert store.reserve_counter(name, 16) == 17
    assert store.get_counter(name) == 17
    with pytest.raises(ConfigError):
        store.reserve_counter(name, 0)
    big = "msk:exhaust"
    assert store.reserve_counter(big, 0xFFFFFFF0) == 0xFFFFFFF0
    with pytest.raises(CounterExhaustedError):
        store.reserve_counter(big, 100)  # would pass 2^32 - 1: nothing reserved
    assert store.get_counter(big) == 0xFFFFFFF0
    assert store.reserve_counter(big, 15) == 0xFFFFFFFF
    with pytest.raises(CounterExhaustedError):
        store.reserve_counter(big, 1)


def test_registrations(store: BmscStore) -> None:
    r1 = Registration("alice@x", SVC.service_id, "b1@bsf", "10.0.0.1", 2269, 5.0)
    r2 = Registration("bob@x", SVC.service_id, "b2@bsf", "10.0.0.2", 40000, 6.0)
    store.put_registration(r2)
    store.put_registration(r1)
    assert store.get_registration("alice@x", SVC.service_id) == r1
    assert store.registrations_for_service(SVC.service_id) == [r1, r2]
    assert store.remove_registration("alice@x", SVC.service_id)
    assert not store.remove_registration("alice@x", SVC.service_id)
    assert store.registrations_for_service(SVC.service_id) == [r2]


def test_deliveries(store: BmscStore) -> None:
    d = DeliveryRecord("b1@bsf", 77, REF, 3, 10.0, "alice@x")
    store.put_delivery(d)
    store.put_delivery(DeliveryRecord("b2@bsf", 78, REF, 1, 11.0, "bob@x"))
    assert store.get_delivery("b1@bsf", 77) == d
    assert not store.confirm_delivery("b1@bsf", 99, 12.0)
    assert store.confirm_delivery("b1@bsf", 77, 12.0)
    assert store.confirm_delivery("b1@bsf", 77, 13.0)  # first confirmation wins
    got = store.get_delivery("b1@bsf", 77)
    assert got is not None and got.confirmed_at == 12.0
    assert [x.csb_id for x in store.deliveries_for_msk(REF)] == [77, 78]


def test_sqlite_durable_across_reopen(tmp_path: Path) -> None:
    p = tmp_path / "b.db"
    s = SqliteBmscStore(p)
    s.put_service(SVC)
    s.put_msk(MskRecord(REF, SVC.service_id, bytes(16), 0.0, 100.0))
    assert s.reserve_counter("x", 8) == 8
    s.close()
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    s2 = SqliteBmscStore(p)
    assert s2.get_service(SVC.service_id) == SVC
    assert s2.reserve_counter("x", 8) == 16
    assert s2.get_msk(REF) is not None
    s2.close()


def test_service_record_validation() -> None:
    with pytest.raises(ConfigError):
        ServiceRecord("s", KD, 1, "239.0.0.1", 1, msk_lifetime=5, mtk_lifetime=10)
    with pytest.raises(ConfigError):
        ServiceRecord("s", KD[:2], 1, "239.0.0.1", 1)
    with pytest.raises(ConfigError):
        ServiceRecord("s", KD, 1, "239.0.0.1", 1, msk_lifetime=70000, mtk_lifetime=1)
    assert SVC.mtks_per_msk == 10
    assert SVC.allows("anyone") and not ServiceRecord(
        "s", KD, 1, "h", 1, allowed_users=("a",)
    ).allows("b")


# --- UE key store --------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def ue_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UeKeyStore]:
    s: UeKeyStore = (
        MemoryUeKeyStore() if request.param == "memory" else SqliteUeKeyStore(tmp_path / "ue.db")
    )
    yield s
    s.close()


def test_ue_store(ue_store: UeKeyStore) -> None:
    assert isinstance(ue_store, UeKeyStore)
    muk = UeMukRecord(b"bmsc.x", "b1@bsf", bytes(32), bytes(range(32)), 1000.0)
    ue_store.put_muk(muk)
    assert ue_store.get_muk(b"bmsc.x") == muk
    assert not ue_store.set_muk_counter(b"bmsc.x", "other@bsf", 4)
    assert ue_store.set_muk_counter(b"bmsc.x", "b1@bsf", 4)
    got = ue_store.get_muk(b"bmsc.x")
    assert got is not None and got.last_counter == 4
    msk = UeMskRecord(REF, bytes(16), 1, 10, 5.0, service_id="urn:svc:a")
    ue_store.put_msk(UeMskRecord(REF2, bytes(16), 1, 10, 6.0))
    ue_store.put_msk(msk)
    assert [m.ref for m in ue_store.msks()] == [REF, REF2]
    assert ue_store.set_msk_state(REF, 9, 3)
    st = ue_store.get_msk(REF)
    assert st is not None and (st.last_counter, st.current_mtk_id) == (9, 3)
    mtk = UeMtkRecord(REF, 3, bytes(16), bytes(14), 7.0)
    ue_store.put_mtk(mtk)
    ue_store.put_mtk(UeMtkRecord(REF, 2, bytes(16), None, 6.0))
    assert ue_store.get_mtk(REF, 3) == mtk
    assert [m.mtk_id for m in ue_store.mtks_for_msk(REF)] == [2, 3]
    assert ue_store.delete_msk(REF) and ue_store.get_mtk(REF, 3) is None
    assert not ue_store.set_msk_state(REF, 10, 4)
    assert ue_store.delete_muk(b"bmsc.x") and ue_store.get_muk(b"bmsc.x") is None


def test_ue_sqlite_survives_reopen(tmp_path: Path) -> None:
    s = SqliteUeKeyStore(tmp_path / "ue.db")
    s.put_msk(UeMskRecord(REF, bytes(16), 1, 10, 5.0))
    s.set_msk_state(REF, 7, 2)
    s.close()
    s2 = SqliteUeKeyStore(tmp_path / "ue.db")
    got = s2.get_msk(REF)
    assert got is not None and got.last_counter == 7
    s2.close()
