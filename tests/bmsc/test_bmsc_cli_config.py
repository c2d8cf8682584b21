"""``mbmsec bmsc`` TOML config: defaults, every field, and one-line errors."""

from __future__ import annotations

import pytest

from mbmsec.bmsc.cli import load_bmsc_config
from mbmsec.cli import build_parser
from mbmsec.errors import ConfigError

MINIMAL = """
[bmsc.zn]
url = "http://127.0.0.1:8080"
user = "bmsc"
token = "secret-token"
[[bmsc.service]]
id = "urn:tv"
"""


def test_minimal_config_defaults() -> None:
    cfg = load_bmsc_config(MINIMAL)
    assert cfg.core.fqdn == "bmsc.mbmsec.test"
    assert cfg.udp == ("127.0.0.1", 2269) and cfg.http == (("127.0.0.1", 8081),)
    assert cfg.store is None and cfg.multicast == "auto"
    [svc] = cfg.services
    assert svc.service_id == "urn:tv" and svc.key_domain_id == bytes.fromhex("00f110")
    assert (svc.group_host, svc.group_port, svc.key_group) == ("239.255.0.1", 5001, 1)
    assert "secret-token" not in repr(cfg)


def test_full_config(tmp_path: object) -> None:
    text = """
[bmsc]
fqdn = "bmsc.example.net"
udp = "127.0.0.1:12269"
http = ["127.0.0.1:0", "[::1]:0"]
store = "b.db"
multicast = "off"
push_timeout = 1.5
push_retries = 4
replay_skew = 30
log_level = "debug"
[bmsc.zn]
url = "http://bsf:8080"
user = "bmsc"
token = "abcdefgh"
timeout = 2
[[bmsc.service]]
id = "urn:a"
key_domain_id = "62f210"
key_group = 9
group = "239.1.2.3:6000"
msk_lifetime = 60
mtk_lifetime = 10
msk_lead = 20
mtk_lead = 1
announce_interval = 0.5
salt = false
verification = false
allowed_users = ["alice@x"]
start = 100
"""
    cfg = load_bmsc_config(text)
    assert cfg.core.fqdn == "bmsc.example.net" and cfg.core.push_retries == 4
    assert cfg.core.replay.max_skew == 30.0 and cfg.http[1] == ("::1", 0)
    [s] = cfg.services
    assert (s.key_domain_id, s.key_group, s.group_port) == (bytes.fromhex("62f210"), 9, 6000)
    assert (s.msk_lifetime, s.mtk_lifetime, s.msk_lead, s.mtk_lead) == (60, 10, 20, 1)
    assert (s.salt, s.verification, s.allowed_users, s.start) == (False, False, ("alice@x",), 100)
    assert cfg.zn.timeout == 2.0 and cfg.multicast == "off"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[bmsc\n", "syntax"),
        ("[other]\n", "unknown key config.other"),
        ("[bmsc]\nbogus = 1\n" + MINIMAL, "bmsc.bogus"),
        ("[[bmsc.service]]\nid = 'x'\n", "bmsc.zn"),
        (MINIMAL.split("[[bmsc.service]]")[0], "at least one"),
        (MINIMAL + "key_group = 'one'\n", "wrong type"),
        (MINIMAL + "group = 'nohost'\n", "host:port"),
        (MINIMAL + "mtk_lifetime = 100\nmsk_lifetime = 10\n", "mtk_lifetime"),
        ("[bmsc]\nmulticast = 'maybe'\n" + MINIMAL, "auto, on or off"),
        (MINIMAL + "key_domain_id = 'zz'\n", "hex"),
    ],
)
def test_bad_configs_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_bmsc_config(text)
    assert fragment in str(info.value)


def test_parser_has_bmsc_and_ue_run() -> None:
    parser = build_parser()
    args = parser.parse_args(["bmsc", "--config", "x.toml"])
    assert args.config == "x.toml" and callable(args.func)
    args = parser.parse_args(["ue", "run", "--profile", "3gpp"])
    assert args.profile == "3gpp" and callable(args.func)
    args = parser.parse_args(
        ["ue", "bootstrap", "--bsf", "http://x", "--impi", "a", "--k", "00", "--opc", "00"]
    )
    assert args.ue_command == "bootstrap"
