"""HSS: subscriber records and the Zh role (authentication vectors, resync, GUSS), sans-I/O.

Zh (TS 29.109 Multimedia-Auth-Request/Answer) is an in-process call here: the BSF asks
:meth:`Hss.authentication_vector` for one AV and the subscriber's GUSS, and passes RAND + AUTS to
:meth:`Hss.resync` on a synchronisation failure (TS 33.220 §4.5.2, TS 33.102 §6.3.5).

SQN handling follows TS 33.102 Annex C (see :mod:`mbmsec.gba.aka`): each AV advances SQN_HE
with :func:`~mbmsec.gba.aka.next_sqn` atomically and durably in the store before the AV leaves
the HSS, so no SQN is ever issued twice, even across a crash.

Provisioning helpers parse subscriber records from hex strings, CSV and TOML; every problem is
a :class:`~mbmsec.errors.ConfigError` with a one-line message that never contains key bytes.
"""

from __future__ import annotations

import csv
import io
import logging
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError, SqnExhaustedError, UnknownEntryError
from ..store.protocols import SQN_MAX, Guss, Subscriber, SubscriberStore
from .aka import AuthVector, generate_av, next_sqn, resync, sqn_after_resync
from .milenage import compute_opc

__all__ = [
    "Hss",
    "ZhAnswer",
    "make_subscriber",
    "parse_hex",
    "parse_subscribers_csv",
    "parse_subscribers_toml",
]

log = logging.getLogger("mbmsec.hss")

RAND_LEN = 16


@dataclass(frozen=True, slots=True)
class ZhAnswer:
    """What the HSS returns over Zh (TS 29.109 MAA): one AV, the GUSS and the UICC type."""

    impi: str
    av: AuthVector
    guss: Guss
    uicc: bool


class Hss:
    """The HSS role over a :class:`~mbmsec.store.protocols.SubscriberStore`.

    ``rng(n)`` returns ``n`` random bytes (RANDs). No clock is needed.
    """

    def __init__(self, store: SubscriberStore, rng: Callable[[int], bytes]) -> None:
        self.store = store
        self._rng = rng

    def authentication_vector(self, impi: str) -> ZhAnswer:
        """Generate one AV for ``impi`` (TS 33.102 §6.3.2), advancing SQN_HE durably first.

        Raises UnknownEntryError when the IMPI is not provisioned and SqnExhaustedError when
        SQN_HE is at its maximum (the record is then unchanged).
        """
        try:
            sub = self.store.advance_sqn(impi, next_sqn)
        except ValueError:  # TS 33.102 Annex C.1: SEQ would overflow its 43 bits
            raise SqnExhaustedError("SQN space exhausted for this subscriber") from None
        if sub is None:
            raise UnknownEntryError("unknown IMPI")
        av = generate_av(sub.k, sub.opc, sub.sqn, sub.amf, self._rng(RAND_LEN))
        log.debug("zh av generated", extra={"impi": impi, "sqn": sub.sqn})
        return ZhAnswer(impi=impi, av=av, guss=sub.guss, uicc=sub.uicc)

    def resync(self, impi: str, rand: bytes, auts: bytes) -> int:
        """Re-synchronise SQN_HE from AUTS (TS 33.102 §6.3.5); return the SQN_MS recovered.

        Raises UnknownEntryError (unknown IMPI), AkaMacError (MAC-S wrong: SQN_HE unchanged),
        SqnExhaustedError (SQN_HE at its maximum) and ValueError (bad RAND/AUTS length).
        """
        sub = self.store.get(impi)
        if sub is None:
            raise UnknownEntryError("unknown IMPI")
        sqn_ms = resync(sub.k, sub.opc, rand, auts)
        try:
            after = self.store.advance_sqn(impi, lambda he: sqn_after_resync(he, sqn_ms))
        except ValueError:  # next_sqn(SQN_HE) inside sqn_after_resync overflows
            raise SqnExhaustedError("SQN space exhausted for this subscriber") from None
        if after is None:
            raise UnknownEntryError("unknown IMPI")
        log.debug("zh resync", extra={"impi": impi, "sqn_ms": sqn_ms})
        return sqn_ms

    def subscriber(self, impi: str) -> Subscriber | None:
        """Return the record (for GUSS and UICC type lookups) or None."""
        return self.store.get(impi)


# --- provisioning ------------------------------------------------------------------------------


def parse_hex(name: str, text: str, length: int) -> bytes:
    """Parse ``text`` as exactly ``length`` bytes of hex; ConfigError otherwise.

    The error message names the field and the expected length, never the value.
    """
    t = text.strip()
    if t.lower().startswith("0x"):
        t = t[2:]
    try:
        value = bytes.fromhex(t)
    except ValueError:
        raise ConfigError(f"{name} is not valid hex") from None
    if len(value) != length:
        raise ConfigError(f"{name} must be {length} bytes ({2 * length} hex digits)")
    return value


def _split_list(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = value.replace(";", " ").replace(",", " ").split()
    elif isinstance(value, list | tuple):
        parts = []
        for v in value:
            if not isinstance(v, str):
                raise ConfigError(f"{name} entries must be strings")
            parts.append(v.strip())
    else:
        raise ConfigError(f"{name} must be a list of strings")
    return tuple(p for p in parts if p)


def _as_list(value: Iterable[str] | str | None) -> list[str] | str | None:
    return value if value is None or isinstance(value, str) else list(value)


def make_subscriber(
    impi: str,
    k: str,
    *,
    opc: str | None = None,
    op: str | None = None,
    sqn: int | str = 0,
    amf: str = "8000",
    naf_fqdns: Iterable[str] | str | None = ("*",),
    mbms_service_ids: Iterable[str] | str | None = (),
    uicc: bool = False,
) -> Subscriber:
    """Build a validated :class:`Subscriber` from provisioning text.

    Exactly one of ``opc`` / ``op`` (OPc is then computed, TS 35.206 §4.1). ``naf_fqdns`` and
    ``mbms_service_ids`` are lists or strings separated by spaces, commas or ';'; the NAF
    ``"*"`` (the default) allows every NAF. Raises ConfigError with one line naming the bad
    field.
    """
    impi = impi.strip()
    if not impi or len(impi) > 255 or any(c.isspace() or ord(c) < 0x20 for c in impi):
        raise ConfigError("IMPI must be 1..255 printable characters without spaces")
    k_b = parse_hex("K", k, 16)
    if (opc is None) == (op is None):
        raise ConfigError("give exactly one of OPc or OP")
    if opc is not None:
        opc_b = parse_hex("OPc", opc, 16)
    else:
        opc_b = compute_opc(k_b, parse_hex("OP", op or "", 16))
    try:
        sqn_i = int(sqn, 0) if isinstance(sqn, str) else int(sqn)
    except ValueError:
        raise ConfigError("SQN must be an integer") from None
    if not 0 <= sqn_i <= SQN_MAX:
        raise ConfigError("SQN must be in 0..2^48-1")
    amf_b = parse_hex("AMF", amf, 2)
    nafs = _split_list(_as_list(naf_fqdns), "NAFs")
    svcs = _split_list(_as_list(mbms_service_ids), "MBMS services")
    return Subscriber(
        impi=impi,
        k=k_b,
        opc=opc_b,
        sqn=sqn_i,
        amf=amf_b,
        guss=Guss(naf_fqdns=nafs, mbms_service_ids=svcs),
        uicc=uicc,
    )


def _bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "y"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"", "0", "false", "no", "n"}:
        return False
    raise ConfigError(f"{where}: uicc must be true or false")


def _from_mapping(row: Mapping[str, object], where: str) -> Subscriber:
    known = {"impi", "k", "opc", "op", "sqn", "amf", "nafs", "naf_fqdns", "mbms_services", "uicc"}
    extra = sorted(set(row) - known)
    if extra:
        raise ConfigError(f"{where}: unknown field {extra[0]!r}")

    def text(key: str) -> str | None:
        v = row.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str):
            raise ConfigError(f"{where}: {key} must be a string")
        return v

    impi = text("impi")
    k = text("k")
    if impi is None or k is None:
        raise ConfigError(f"{where}: impi and k are required")
    sqn = row.get("sqn", 0)
    if sqn is None or sqn == "":
        sqn = 0
    if not isinstance(sqn, int | str) or isinstance(sqn, bool):
        raise ConfigError(f"{where}: sqn must be an integer")
    nafs = row.get("nafs", row.get("naf_fqdns", ("*",)))
    if nafs == "":
        nafs = ("*",)
    try:
        return make_subscriber(
            impi,
            k,
            opc=text("opc"),
            op=text("op"),
            sqn=sqn,
            amf=text("amf") or "8000",
            naf_fqdns=_split_list(nafs, "nafs"),
            mbms_service_ids=_split_list(row.get("mbms_services"), "mbms_services"),
            uicc=_bool(row.get("uicc", False), where),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_subscribers_csv(text: str) -> list[Subscriber]:
    """Parse CSV with a header row naming columns impi, k, opc|op [, sqn, amf, nafs,
    mbms_services, uicc]. List columns are separated by spaces or ';'. Raises ConfigError."""
    reader = csv.DictReader(io.StringIO(text))
    out: list[Subscriber] = []
    try:
        if reader.fieldnames is None:
            raise ConfigError("CSV has no header row")
        names = [n.strip().lower() for n in reader.fieldnames]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"line 1: column {twice[0]!r} twice")
        for i, row in enumerate(reader, start=2):
            if None in row:
                raise ConfigError(f"line {i}: more fields than the header has")
            out.append(_from_mapping({k.strip().lower(): v for k, v in row.items()}, f"line {i}"))
    except csv.Error as exc:  # field larger than the csv limit, bad quoting in strict mode
        raise ConfigError(f"line {reader.line_num + 1}: CSV error: {exc}") from None
    _no_duplicates(out, [f"line {i}" for i in range(2, len(out) + 2)])
    return out


def _no_duplicates(subs: list[Subscriber], wheres: list[str]) -> None:
    """ConfigError naming the first repeated IMPI (so an import is refused before the store)."""
    first: dict[str, str] = {}
    for s, where in zip(subs, wheres, strict=True):
        if s.impi in first:
            raise ConfigError(f"{where}: IMPI {s.impi} already in {first[s.impi]}")
        first[s.impi] = where


def parse_subscribers_toml(text: str) -> list[Subscriber]:
    """Parse TOML with ``[[subscriber]]`` tables (same field names as the CSV columns, lists
    as TOML arrays). Raises ConfigError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}") from None
    entries = doc.get("subscriber")
    if not isinstance(entries, list):
        raise ConfigError("TOML needs [[subscriber]] tables")
    out = []
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"subscriber #{i}: not a table")
        out.append(_from_mapping(entry, f"subscriber #{i}"))
    _no_duplicates(out, [f"subscriber #{i}" for i in range(1, len(out) + 1)])
    return out
