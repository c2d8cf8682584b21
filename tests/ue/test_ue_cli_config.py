"""``mbmsec ue run`` TOML config: defaults, overrides, one-line errors; event JSON lines."""

from __future__ import annotations

import json

import pytest

from mbmsec.errors import ConfigError
from mbmsec.ue.cli import event_json, load_ue_config
from mbmsec.ue.events import MskInstalled

BASE = """
[ue]
impi = "ue1@x"
k = "465b5ce8b199b49faa5f0a2ee238a6bc"
opc = "cd63cb71954a9f4e48a5994e37a02baf"
bsf = "http://127.0.0.1:8080"
bmsc_http = "http://127.0.0.1:8081"
[[ue.service]]
id = "urn:tv"
group = "239.1.1.1:5001"
"""


def test_defaults_and_profile_override() -> None:
    cfg = load_ue_config(BASE)
    assert cfg.ue.profile == "compact" and cfg.ue.bmsc_addr == ("127.0.0.1", 2269)
    assert cfg.groups == (("239.1.1.1", 5001),) and cfg.listen == ("127.0.0.1", 0)
    assert cfg.ue.services[0].key_domain_id is None
    assert "465b5ce8" not in repr(cfg) and "cd63cb71" not in repr(cfg)
    assert load_ue_config(BASE, "3gpp").ue.profile == "3gpp"


def test_service_usd_fields_retry_and_op() -> None:
    text = BASE.replace(
        'opc = "cd63cb71954a9f4e48a5994e37a02baf"', 'op = "cdc202d5123e20f62b6d676ac72cb318"'
    )
    text += 'key_domain = "262-01"\nkey_group = 4\nmtk_period = 20\n'
    text += "[ue.retry]\nlead_time = 5\nmax_attempts = 3\n"
    cfg = load_ue_config(text)
    s = cfg.ue.services[0]
    assert (s.key_domain_id, s.key_group, s.mtk_period) == (bytes.fromhex("62f210"), 4, 20.0)
    assert cfg.ue.retry.lead_time == 5.0 and cfg.ue.retry.max_attempts == 3
    # TS 35.208 test set 1: OP -> OPc
    assert cfg.opc.hex() == "cd63cb71954a9f4e48a5994e37a02baf"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[ue]\nimpi='a'\n", "required"),
        (BASE.replace("465b5ce8b199b49faa5f0a2ee238a6bc", "12"), "16 bytes"),
        (BASE + "[ue.retry]\nbogus = 1\n", "ue.retry.bogus"),
        (BASE.replace('[[ue.service]]\nid = "urn:tv"\ngroup = "239.1.1.1:5001"\n', ""), "service"),
        (BASE.replace('bsf = "http', 'profile = "x"\nbsf = "http'), "compact or 3gpp"),
        (BASE.replace('bmsc_http = "http://127.0.0.1:8081"\n', 'profile = "3gpp"\n'), "bmsc_http"),
        (BASE + "key_domain_id = 'nothex'\n", "hex"),
    ],
)
def test_bad_configs(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_ue_config(text)
    assert fragment in str(info.value)


def test_event_json_has_ids_only() -> None:
    line = event_json(MskInstalled(1.5, "00f110/0001:0002", "urn:tv", 1, 6, "push"))
    assert json.loads(line) == {
        "event": "msk-installed",
        "at": 1.5,
        "msk_id": "00f110/0001:0002",
        "service_id": "urn:tv",
        "mtk_id_first": 1,
        "mtk_id_last": 6,
        "via": "push",
    }
