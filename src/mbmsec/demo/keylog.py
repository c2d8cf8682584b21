"""The demo's key log: every key the run used, in a line-based text form (docs/demo.md).

Off by default; ``mbmsec demo --keylog FILE`` writes it next to ``--pcap FILE`` so that a user
debugging the exchange can decrypt the capture (the MSK and MTK messages with the MUK and MSK,
the SRTP packets with the MTK and salt). Like TLS's SSLKEYLOGFILE it is a debugging aid: the
file holds secrets and is written with mode 0600.

Format, one key per line, fields separated by one space, binary values in lowercase hex,
``#`` starts a comment line::

    KS_NAF <B-TID> <NAF-Id> <Ks_NAF>              TS 33.220 Annex B.3
    MRK <B-TID> <NAF-Id> <MRK>                     TS 33.246 §6.1 (HTTP digest password)
    MUK <IDi> <IDr> <MUK>                          IDi = NAF-Id, IDr = B-TID (TS 31.102 §4.2.81)
    MSK <Key Domain ID> <MSK ID> <MSK>             TS 33.246 §6.3 (3 + 4 byte identifiers)
    MTK <MSK ID> <MTK ID> <MTK> <salt or ->        TS 33.246 §6.4
    SRTP <MKI> <master key> <master salt> <ROC>    RFC 3711 master key for MKI = MSK ID||MTK ID

Identifiers in text (B-TID, NAF-Id) must not contain spaces; the writer refuses them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DecodeError

__all__ = ["LABELS", "KeyLog", "KeyLogEntry", "parse_keylog"]

LABELS: dict[str, int] = {
    # label -> number of fields after the label
    "KS_NAF": 3,
    "MRK": 3,
    "MUK": 3,
    "MSK": 3,
    "MTK": 4,
    "SRTP": 4,
}
HEADER = "# mbmsec demo key log v1 (format: docs/demo.md). SECRET: delete after use.\n"


@dataclass(frozen=True, slots=True)
class KeyLogEntry:
    """One key log line: its label and its fields (key fields hidden from repr)."""

    label: str
    ids: tuple[str, ...]
    key: bytes = field(repr=False)
    extra: tuple[str, ...] = field(default=(), repr=False)

    def line(self) -> str:
        """The entry as one line of text (without the newline)."""
        return " ".join((self.label, *self.ids, self.key.hex(), *self.extra))


def _check_id(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ConfigError("key log identifiers must be non-empty and contain no spaces")
    return text


class KeyLog:
    """Appends entries to a file (created 0600) as they happen, each line once."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: set[str] = set()
        self._fh: object | None = None
        self.entries: list[KeyLogEntry] = []
        if path is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(HEADER)

    @property
    def enabled(self) -> bool:
        """True when a file was given."""
        return self.path is not None

    def add(self, entry: KeyLogEntry) -> None:
        """Write ``entry`` unless the same line was written before."""
        if self.path is None:
            return
        text = entry.line()
        if text in self._seen:
            return
        self._seen.add(text)
        self.entries.append(entry)
        with self.path.open("a", encoding="ascii") as fh:
            fh.write(text + "\n")

    def ks_naf(self, b_tid: str, naf_id: str, key: bytes) -> None:
        """Log a Ks_NAF."""
        self.add(KeyLogEntry("KS_NAF", (_check_id(b_tid), _check_id(naf_id)), key))

    def mrk(self, b_tid: str, naf_id: str, key: bytes) -> None:
        """Log an MRK."""
        self.add(KeyLogEntry("MRK", (_check_id(b_tid), _check_id(naf_id)), key))

    def muk(self, idi: str, idr: str, key: bytes) -> None:
        """Log a MUK named by its (IDi, IDr)."""
        self.add(KeyLogEntry("MUK", (_check_id(idi), _check_id(idr)), key))

    def msk(self, key_domain_id: bytes, msk_id: int, key: bytes) -> None:
        """Log an MSK named by (Key Domain ID, MSK ID)."""
        self.add(KeyLogEntry("MSK", (key_domain_id.hex(), f"{msk_id:08x}"), key))

    def mtk(self, msk_id: int, mtk_id: int, key: bytes, salt: bytes | None) -> None:
        """Log an MTK and its salt (``-`` when the MTK message had none)."""
        extra = (salt.hex() if salt else "-",)
        self.add(KeyLogEntry("MTK", (f"{msk_id:08x}", f"{mtk_id:04x}"), key, extra))

    def srtp(self, mki: bytes, master_key: bytes, master_salt: bytes | None, roc: int) -> None:
        """Log the SRTP master key and salt used for ``mki`` and the ROC it started from."""
        salt = (master_salt or bytes(14)).hex()
        self.add(KeyLogEntry("SRTP", (mki.hex(),), master_key, (salt, str(roc))))


def parse_keylog(lines: Iterable[str]) -> list[KeyLogEntry]:
    """Parse key log text; raise DecodeError naming the line number on a malformed line."""
    out: list[KeyLogEntry] = []
    for no, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(" ")
        label = parts[0]
        want = LABELS.get(label)
        if want is None or len(parts) != want + 1:
            raise DecodeError(f"key log line {no}: unknown label or wrong field count")
        key_index = 2 if label == "SRTP" else 3
        try:
            key = bytes.fromhex(parts[key_index])
        except ValueError:
            raise DecodeError(f"key log line {no}: key is not hex") from None
        out.append(
            KeyLogEntry(label, tuple(parts[1:key_index]), key, tuple(parts[key_index + 1 :]))
        )
    return out
