import pytest

from mbmsec.cli import build_parser, main
from mbmsec.ue_cli import normalize_argv


def test_ue_without_subcommand_runs_the_key_client() -> None:
    assert normalize_argv(["ue", "--config", "u.toml"]) == ["ue", "run", "--config", "u.toml"]
    assert normalize_argv(["ue", "--profile", "3gpp"]) == ["ue", "run", "--profile", "3gpp"]
    args = build_parser().parse_args(normalize_argv(["ue", "--config", "u.toml"]))
    assert args.ue_command == "run"
    assert args.config == "u.toml"


def test_ue_subcommands_and_help_untouched() -> None:
    assert normalize_argv(["ue", "bootstrap", "--bsf", "x"]) == ["ue", "bootstrap", "--bsf", "x"]
    assert normalize_argv(["ue", "-h"]) == ["ue", "-h"]
    assert normalize_argv(["ue"]) == ["ue"]
    assert normalize_argv(["bsf", "--config", "b"]) == ["bsf", "--config", "b"]


def test_missing_config_file_is_one_line_and_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["ue", "--config", "/nonexistent/ue.toml"])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ue.toml" in err[0]


def test_bad_toml_config_is_one_line(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    import pathlib

    cfg = pathlib.Path(str(tmp_path)) / "bad.toml"
    cfg.write_text("[ue\nprofile = 'compact'\n")
    rc = main(["ue", "--config", str(cfg)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "TOML" in err[0]


@pytest.mark.parametrize("cmd", ["bmsc", "bsf"])
def test_server_missing_config_is_one_line(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([cmd, "--config", "/nonexistent/x.toml"])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
