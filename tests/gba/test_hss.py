"""HSS: AV generation advances SQN durably, resync, provisioning parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbmsec.errors import AkaMacError, ConfigError, SyncFailureError, UnknownEntryError
from mbmsec.gba.aka import SqnState, Usim, next_sqn
from mbmsec.gba.hss import (
    Hss,
    make_subscriber,
    parse_hex,
    parse_subscribers_csv,
    parse_subscribers_toml,
)
from mbmsec.store.memory_gba import MemorySubscriberStore
from mbmsec.store.sqlite_gba import SqliteSubscriberStore

# TS 35.208 §4.3 test set 1
K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")


def fixed_rng(n: int) -> bytes:
    assert n == 16
    return RAND


def test_op_gives_opc() -> None:
    s = make_subscriber("u@h", K, op=OP)
    assert s.opc.hex() == OPC
    assert make_subscriber("u@h", K, opc=OPC).opc.hex() == OPC


def test_av_matches_test_set_and_advances_sqn(tmp_path: Path) -> None:
    store = SqliteSubscriberStore(tmp_path / "h.db")
    # SQN_HE such that next_sqn() gives test set 1's SQN ff9bb4d0b607 (SEQ+1, IND+1).
    target = 0xFF9BB4D0B607
    seq, ind = target >> 5, target & 31
    store.add(
        make_subscriber("u@h", K, opc=OPC, sqn=((seq - 1) << 5) | ((ind - 1) % 32), amf="b9b9")
    )
    hss = Hss(store, fixed_rng)
    ans = hss.authentication_vector("u@h")
    assert ans.av.autn.hex() == "55f328b43577b9b94a9ffac354dfafb3"
    assert ans.av.xres.hex() == "a54211d5e3ba50bf"
    assert ans.av.ck.hex() == "b40ba9a3c58b2a05bbf0d987b21bf8cb"
    assert ans.av.ik.hex() == "f769bcd751044604127672711c6d3441"
    store.close()
    again = SqliteSubscriberStore(tmp_path / "h.db")
    got = again.get("u@h")
    assert got is not None and got.sqn == target  # durable
    ans2 = Hss(again, fixed_rng).authentication_vector("u@h")
    assert ans2.av.autn != ans.av.autn
    again.close()


def test_unknown_impi() -> None:
    hss = Hss(MemorySubscriberStore(), fixed_rng)
    with pytest.raises(UnknownEntryError):
        hss.authentication_vector("nobody@h")
    with pytest.raises(UnknownEntryError):
        hss.resync("nobody@h", RAND, bytes(14))


def test_resync_brings_hss_past_usim() -> None:
    store = MemorySubscriberStore()
    store.add(make_subscriber("u@h", K, opc=OPC))
    hss = Hss(store, fixed_rng)
    k, opc = bytes.fromhex(K), bytes.fromhex(OPC)
    # The USIM has already accepted a much higher SQN (e.g. from another HSS image).
    usim = Usim(k, opc, SqnState().accept(next_sqn(5000 << 5)))
    ans = hss.authentication_vector("u@h")
    with pytest.raises(SyncFailureError) as ei:
        usim.authenticate(ans.av.rand, ans.av.autn)
    sqn_ms = hss.resync("u@h", ans.av.rand, ei.value.auts)
    assert sqn_ms == usim.sqn_state.sqn_ms
    ans2 = hss.authentication_vector("u@h")
    res = usim.authenticate(ans2.av.rand, ans2.av.autn)
    assert res.res == ans2.av.xres
    # A forged AUTS does not move SQN_HE.
    before = store.get("u@h")
    bad = bytearray(ei.value.auts)
    bad[-1] ^= 1
    with pytest.raises(AkaMacError):
        hss.resync("u@h", ans.av.rand, bytes(bad))
    assert store.get("u@h") == before


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"k": "00"}, "K must be 16 bytes"),
        ({"k": "zz" * 16}, "K is not valid hex"),
        ({"opc": "11" * 15}, "OPc must be 16 bytes"),
        ({"amf": "123"}, "AMF"),
        ({"sqn": -1}, "SQN"),
        ({"sqn": "x"}, "SQN"),
        ({"impi": "has space@h"}, "IMPI"),
        ({"op": OP}, "exactly one"),
    ],
)
def test_make_subscriber_errors(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {"impi": "u@h", "k": K, "opc": OPC}
    args.update(kwargs)
    with pytest.raises(ConfigError) as ei:
        make_subscriber(**args)  # type: ignore[arg-type]
    assert needle in str(ei.value)
    assert K not in str(ei.value)


def test_parse_hex_accepts_0x() -> None:
    assert parse_hex("AMF", "0x8000", 2) == b"\x80\x00"


def test_csv_import() -> None:
    text = (
        "impi,k,opc,op,sqn,amf,nafs,mbms_services,uicc\n"
        f"a@h,{K},{OPC},,32,8000,bmsc.h;other.h,svc1 svc2,false\n"
        f"b@h,{K},,{OP},,,,,true\n"
    )
    subs = parse_subscribers_csv(text)
    assert [s.impi for s in subs] == ["a@h", "b@h"]
    assert subs[0].guss.naf_fqdns == ("bmsc.h", "other.h")
    assert subs[0].guss.mbms_service_ids == ("svc1", "svc2")
    assert subs[0].sqn == 32
    assert subs[1].opc.hex() == OPC and subs[1].uicc and subs[1].guss.naf_fqdns == ("*",)


def test_csv_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match="line 3"):
        parse_subscribers_csv(f"impi,k,opc\na@h,{K},{OPC}\nb@h,{K[:-2]},{OPC}\n")
    with pytest.raises(ConfigError, match="unknown field"):
        parse_subscribers_csv(f"impi,k,opc,colour\na@h,{K},{OPC},red\n")
    with pytest.raises(ConfigError, match="more fields"):
        parse_subscribers_csv(f"impi,k,opc\na@h,{K},{OPC},extra\n")
    with pytest.raises(ConfigError):
        parse_subscribers_csv("")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f"impi,k,opc\na@h,{K},{'x' * 200_000}\n", "line 2"),  # csv field size limit
        (f"impi,k,opc,opc\na@h,{K},{OPC},{OPC}\n", "column 'opc' twice"),
        (f"impi,K ,k,opc\na@h,{K},{K},{OPC}\n", "column 'k' twice"),
        (f"impi,k,opc\na@h,{K},{OPC}\nb@h,{K},{OPC}\na@h,{K},{OPC}\n", "line 4: IMPI a@h"),
    ],
    ids=["field-size", "dup-column", "dup-column-case", "dup-impi"],
)
def test_csv_structure_errors_are_config_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        parse_subscribers_csv(text)
    assert K not in str(info.value) and OPC not in str(info.value)


def test_toml_duplicate_impi() -> None:
    row = f'[[subscriber]]\nimpi = "a@h"\nk = "{K}"\nopc = "{OPC}"\n'
    with pytest.raises(ConfigError, match="subscriber #2: IMPI a@h"):
        parse_subscribers_toml(row + row)


def test_toml_import() -> None:
    text = f"""
[[subscriber]]
impi = "a@h"
k = "{K}"
op = "{OP}"
nafs = ["bmsc.h"]
mbms_services = ["svc"]
uicc = true

[[subscriber]]
impi = "b@h"
k = "{K}"
opc = "{OPC}"
sqn = 64
"""
    subs = parse_subscribers_toml(text)
    assert subs[0].opc.hex() == OPC and subs[0].uicc and subs[0].guss.naf_fqdns == ("bmsc.h",)
    assert subs[1].sqn == 64 and not subs[1].uicc
    with pytest.raises(ConfigError, match="TOML"):
        parse_subscribers_toml("[[subscriber]\n")
    with pytest.raises(ConfigError, match="subscriber #1"):
        parse_subscribers_toml('[[subscriber]]\nimpi = "a@h"\n')
    with pytest.raises(ConfigError, match="sqn"):
        parse_subscribers_toml(
            f'[[subscriber]]\nimpi = "a@h"\nk = "{K}"\nopc = "{OPC}"\nsqn = 1.5\n'
        )
