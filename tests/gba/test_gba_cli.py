"""CLI: ``mbmsec hss add|list|remove|import``, ``mbmsec bsf`` (subprocess), ``mbmsec ue``."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mbmsec.cli import main
from mbmsec.gba.kdf import UA_MBMS, naf_id
from mbmsec.net.gba_client import ZnClient
from mbmsec.store.sqlite_gba import SqliteSubscriberStore

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"


def impis(db: Path) -> list[str]:
    s = SqliteSubscriberStore(db)
    try:
        return [x.impi for x in s.all()]
    finally:
        s.close()


def test_hss_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "g.db")
    assert main(["hss", "add", "--db", db, "a@h", "--k", K, "--op", OP, "--naf", "bmsc.h"]) == 0
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert main(["hss", "add", "--db", db, "b@h", "--k", K, "--opc", OPC, "--uicc"]) == 0
    capsys.readouterr()
    assert main(["hss", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "a@h" in out and "b@h" in out and "GBA_U" in out and "bmsc.h" in out
    assert K not in out and OPC not in out and OP not in out
    assert main(["hss", "list", "--db", db, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"impi": "a@h"' in out and K not in out and OPC not in out
    assert main(["hss", "remove", "--db", db, "a@h"]) == 0
    assert impis(Path(db)) == ["b@h"]
    assert main(["hss", "remove", "--db", db, "a@h"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no subscriber a@h" in err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--k", K[:-2], "--opc", OPC], "K must be 16 bytes"),
        (["--k", "x" * 32, "--opc", OPC], "K is not valid hex"),
        (["--k", K, "--opc", OPC, "--amf", "zz"], "AMF"),
        (["--k", K, "--opc", OPC, "--sqn", "-5"], "SQN"),
    ],
)
def test_hss_add_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    db = str(tmp_path / "g.db")
    assert main(["hss", "add", "--db", db, "a@h", *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and K not in err
    assert not Path(db).exists() or impis(Path(db)) == []


def test_hss_duplicate_and_stdin_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "g.db")
    monkeypatch.setattr(sys, "stdin", io.StringIO(K + "\n"))
    assert main(["hss", "add", "--db", db, "a@h", "--k", "-", "--opc", OPC]) == 0
    assert main(["hss", "add", "--db", db, "a@h", "--k", K, "--opc", OPC]) == 2
    err = capsys.readouterr().err
    assert "already provisioned" in err and err.count("\n") == 1
    s = SqliteSubscriberStore(Path(db))
    got = s.get("a@h")
    s.close()
    assert got is not None and got.k.hex() == K


def test_hss_import_csv_toml_atomic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "g.db")
    csv_ok = tmp_path / "subs.csv"
    csv_ok.write_text(f"impi,k,opc,nafs\na@h,{K},{OPC},bmsc.h\nb@h,{K},{OPC},\n")
    assert main(["hss", "import", "--db", db, str(csv_ok)]) == 0
    assert impis(Path(db)) == ["a@h", "b@h"]
    # one duplicate row: nothing from the file is written
    csv_dup = tmp_path / "dup.csv"
    csv_dup.write_text(f"impi,k,opc\nc@h,{K},{OPC}\na@h,{K},{OPC}\n")
    assert main(["hss", "import", "--db", db, str(csv_dup)]) == 2
    assert impis(Path(db)) == ["a@h", "b@h"]
    # a bad row: one line naming it, nothing written
    csv_bad = tmp_path / "bad.csv"
    csv_bad.write_text(f"impi,k,opc\nd@h,{K},{OPC}\ne@h,{K},{OPC[:5]}\n")
    capsys.readouterr()
    assert main(["hss", "import", "--db", db, str(csv_bad)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and err.count("\n") == 1
    assert impis(Path(db)) == ["a@h", "b@h"]
    toml = tmp_path / "subs.toml"
    toml.write_text(f'[[subscriber]]\nimpi = "t@h"\nk = "{K}"\nop = "{OP}"\nuicc = true\n')
    assert main(["hss", "import", "--db", db, str(toml)]) == 0
    assert impis(Path(db)) == ["a@h", "b@h", "t@h"]
    assert main(["hss", "import", "--db", db, str(tmp_path / "missing.csv")]) == 2
    assert main(["hss", "list", "--db", str(tmp_path / "none.db")]) == 2


def test_bsf_process_and_ue_bootstrap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "g.db"
    assert main(["hss", "add", "--db", str(db), "u@h", "--k", K, "--opc", OPC]) == 0
    cfg = tmp_path / "bsf.toml"
    cfg.write_text(
        '[bsf]\ndomain = "bsf.h"\nlisten = ["127.0.0.1:0"]\nkey_lifetime = 600\n'
        '[[bsf.naf]]\nname = "bmsc"\ntoken = "0123456789abcdef"\nfqdns = ["bmsc.h"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbmsec.cli", "bsf", "--config", str(cfg), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("bsf listening on http://127.0.0.1:"), line
        url = line.split()[3]
        capsys.readouterr()
        ue = ["ue", "bootstrap", "--bsf", url, "--impi", "u@h", "--k", K, "--opc", OPC]
        rc = main([*ue, "--realm", "bsf.h", "--naf", "bmsc.h", "--show-key"])
        assert rc == 0
        out = dict(x.split(" ", 1) for x in capsys.readouterr().out.splitlines())
        assert out["btid"].endswith("@bsf.h") and out["gba"] == "GBA_ME"

        async def zn() -> bytes:
            c = ZnClient(url, token="0123456789abcdef")
            try:
                return (await c.lookup(out["btid"], naf_id("bmsc.h", UA_MBMS))).me_key
            finally:
                await c.close()

        assert asyncio.run(zn()).hex() == out["ks_naf"]
        # wrong realm insisted on by the UE: one error line, non-zero
        rc = main([*ue, "--realm", "other.h"])
        assert rc == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        logs = proc.stderr.read() if proc.stderr else ""
        assert '"msg":"ub bootstrapped"' in logs and '"msg":"bsf stopping"' in logs
        assert K not in logs and OPC not in logs and out["ks_naf"] not in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bsf_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    for text, needle in [
        ("[bsf]\nlisten = ['nohost']\n", "host:port"),
        ("[bsf]\nkey_lifetime = -1\n", "positive"),
        ("[bsf]\ncolour = 'red'\n", "unknown key"),
        ("[bsf\n", "TOML"),
        ("[[bsf.naf]]\nname = 'x'\ntoken = 'short'\n", "token"),
    ]:
        cfg.write_text(text)
        assert main(["bsf", "--config", str(cfg), "--db", str(tmp_path / "g.db")]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1


def test_bsf_config_defaults_and_listen_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    from mbmsec.errors import ConfigError
    from mbmsec.net.http_bsf import load_bsf_config, parse_listen

    monkeypatch.delenv("MBMSEC_GBA_DB", raising=False)
    cfg = load_bsf_config(None)
    assert cfg.listen == (("127.0.0.1", 8080),) and cfg.store == "mbmsec-gba.db"
    assert cfg.generated_token and len(cfg.bsf.naf_credentials[0].secret) == 48
    assert cfg.bsf.naf_credentials[0].secret not in repr(cfg)
    monkeypatch.setenv("MBMSEC_GBA_DB", "/tmp/x.db")
    assert load_bsf_config("").store == "/tmp/x.db"
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ("[::1]", "host:", "host:99999", ":80", "[::1]x"):
        with pytest.raises(ConfigError):
            parse_listen(bad)
