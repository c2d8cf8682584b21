"""Run tshark over a capture and read its PDML dissection back as a tree of fields.

Used by the conformance tests: we write messages into a pcap (mbmsec.pcap), let Wireshark's own
dissectors parse them, and compare what they show with what we encoded.

tshark missing: the tests skip on a developer machine, and fail when ``CI=true`` (.ci/run
installs tshark, so absence there is a broken CI environment, not a reason to pass).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Wireshark expert severities (epan/proto.h PI_SEVERITY_MASK values as printed in PDML).
SEVERITY_COMMENT = 0x00100000
SEVERITY_CHAT = 0x00200000
SEVERITY_NOTE = 0x00400000
SEVERITY_WARN = 0x00600000
SEVERITY_ERROR = 0x00800000


def tshark_path() -> str:
    """Path of tshark; skip the test when absent, fail instead under CI=true."""
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tshark is required under CI=true but is not installed")
        pytest.skip("tshark not installed")
    return path


@dataclass
class Field:
    """One PDML ``<field>`` or ``<proto>`` element."""

    name: str
    show: str
    showname: str
    value: str
    pos: int
    size: int
    children: list[Field] = field(default_factory=list)

    def walk(self) -> Iterator[Field]:
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, name: str) -> list[Field]:
        """All descendants (and self) named ``name``, in document order."""
        return [f for f in self.walk() if f.name == name]

    def one(self, name: str) -> Field:
        found = self.find(name)
        assert len(found) == 1, f"expected one {name}, found {len(found)}"
        return found[0]

    def child(self, name: str) -> list[Field]:
        """Direct children named ``name``."""
        return [c for c in self.children if c.name == name]

    @property
    def raw(self) -> bytes:
        """The field's bytes as PDML ``value`` hex (for byte and integer fields)."""
        return bytes.fromhex(self.value)

    @property
    def int(self) -> int:
        return int(self.show, 0)


@dataclass
class Expert:
    message: str
    severity: int
    group: int
    protocol: str


@dataclass
class Packet:
    number: int
    protos: list[Field]

    def proto(self, name: str) -> Field:
        found = [p for p in self.protos if p.name == name]
        assert len(found) == 1, f"frame {self.number}: expected one {name} layer"
        return found[0]

    def has_proto(self, name: str) -> bool:
        return any(p.name == name for p in self.protos)

    def find(self, name: str) -> list[Field]:
        return [f for p in self.protos for f in p.find(name)]

    def experts(self) -> list[Expert]:
        """Every expert item of the frame, with the protocol layer it was added under."""
        out = []
        for p in self.protos:
            for f in p.find("_ws.expert"):
                msg = next((c.show for c in f.children if c.name == "_ws.expert.message"), "")
                sev = next(c.int for c in f.children if c.name == "_ws.expert.severity")
                grp = next(c.int for c in f.children if c.name == "_ws.expert.group")
                out.append(Expert(msg, sev, grp, p.name))
        return out


def _convert(el: ET.Element) -> Field:
    return Field(
        name=el.get("name", ""),
        show=el.get("show", ""),
        showname=el.get("showname", ""),
        value=el.get("value", ""),
        pos=int(el.get("pos", "0")),
        size=int(el.get("size", "0")),
        children=[_convert(c) for c in el if c.tag in ("field", "proto")],
    )


def dissect(pcap: Path, options: Sequence[str] = (), decode_as: Sequence[str] = ()) -> list[Packet]:
    """Run ``tshark -r pcap -T pdml`` (two-pass, so reassembly is complete) and parse it.

    ``options`` are ``-o pref:value`` strings, ``decode_as`` ``-d`` strings.
    """
    cmd = [tshark_path(), "-n", "-2", "-r", str(pcap), "-T", "pdml"]
    for o in options:
        cmd += ["-o", o]
    for d in decode_as:
        cmd += ["-d", d]
    res = subprocess.run(cmd, capture_output=True, check=False, timeout=120)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    root = ET.fromstring(res.stdout)
    packets = []
    for i, pkt in enumerate(root.findall("packet"), start=1):
        packets.append(Packet(i, [_convert(p) for p in pkt.findall("proto")]))
    return packets


def assert_clean(pkt: Packet, *, allowed: Sequence[tuple[str, str]] = ()) -> None:
    """No malformed layer, and no expert item of severity Warning or Error.

    ``allowed`` lists (protocol, message) pairs of expert items expected at any severity; each
    must then be present exactly as given (an expected note that disappears fails too).
    """
    assert not pkt.has_proto("_ws.malformed"), f"frame {pkt.number}: malformed"
    assert not pkt.find("_ws.malformed"), f"frame {pkt.number}: malformed"
    items = [(e.protocol, e.message) for e in pkt.experts()]
    for want in allowed:
        assert want in items, f"frame {pkt.number}: expected expert item {want}, got {items}"
    for e in pkt.experts():
        if (e.protocol, e.message) in allowed:
            continue
        assert e.severity < SEVERITY_WARN, (
            f"frame {pkt.number}: expert {e.protocol}: {e.message} (severity {e.severity:#x})"
        )
