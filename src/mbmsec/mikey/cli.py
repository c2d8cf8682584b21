"""``mbmsec mikey decode``: annotated dump of one MIKEY message, optionally verified with a PSK.

Input is a raw binary message or hex text, detected automatically: text made only of hex digits,
whitespace, ``:`` separators, ``0x`` prefixes and ``#`` comments is hex; anything else is taken
as binary. The argument is a file name, ``-`` for stdin (the default), or the hex itself when
no file of that name exists.

Exit status: 0 the message parses (and, with ``--psk``, its MAC verifies and its KEMAC
decrypts); 1 the MAC or the decryption fails; 2 the input is malformed, unreadable, or the
options are bad. Every failure prints exactly one line on stderr.

With ``--psk`` the command derives the transport keys (RFC 3830 §4.1.4), verifies the KEMAC MAC
over the received bytes (§5.2) and decrypts the Key data (§4.2.3). It then prints the keys:
this is a debugging tool, and it shows key bytes because the user asked for them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import AuthError, DecodeError, MbmsecError
from .codec import Message, decode_key_data, decode_message
from .constants import EncrAlg
from .dump import describe, render_json, render_text
from .payloads import Kemac, KeyData, Rand
from .protect import transport_keys, verify_and_decrypt

PROG = "mbmsec mikey decode"
MAX_INPUT = 1 << 20  # bytes read from a file or stdin; a MIKEY message is far smaller

_HEX_TEXT = re.compile(rb"[0-9a-fA-FxX:\s]*")
_COMMENT = re.compile(rb"#[^\n]*")
_PREFIX = re.compile(rb"(?<![0-9a-fA-F])0[xX]")


class InputError(Exception):
    """The input or an option cannot be used; the message is the one stderr line."""


def parse_hex_text(text: bytes) -> bytes:
    """Hex text to bytes: ``#`` comments, whitespace, ``:`` separators and ``0x`` prefixes are
    ignored. Raises InputError naming the problem."""
    body = _COMMENT.sub(b"", text)
    body = _PREFIX.sub(b"", body)
    digits = re.sub(rb"[\s:]", b"", body)
    bad = re.search(rb"[^0-9a-fA-F]", digits)
    if bad:
        raise InputError(f"bad hex: unexpected character {bad.group().decode('latin-1')!r}")
    if len(digits) % 2:
        raise InputError(f"bad hex: odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits.decode("ascii"))


def looks_like_text(data: bytes) -> bool:
    """True when ``data`` is printable ASCII text (so it should be hex, not a binary message)."""
    return all(32 <= b < 127 or b in b"\t\r\n" for b in data)


def _is_file(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a long hex string is not a valid file name
        return False


def load_message_bytes(source: str, stdin: bytes | None = None) -> bytes:
    """Read ``source`` (a path, ``-`` for stdin, or literal hex) and return the message bytes.

    Raises InputError for an unreadable file or bad hex.
    """
    if source == "-":
        data = stdin if stdin is not None else sys.stdin.buffer.read(MAX_INPUT + 1)
    else:
        path = Path(source)
        if _HEX_TEXT.fullmatch(source.encode()) and not _is_file(path):
            return parse_hex_text(source.encode())
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_INPUT + 1)
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if len(data) > MAX_INPUT:
        raise InputError(f"input larger than {MAX_INPUT} bytes")
    if not data:
        raise InputError("empty input")
    if looks_like_text(data):
        out = parse_hex_text(data)
        if not out:
            raise InputError("bad hex: no hex digits in input")
        return out
    return data


def parse_psk(text: str) -> bytes:
    """The --psk value as bytes. Raises InputError (without echoing the value: it is a key)."""
    try:
        psk = parse_hex_text(text.encode())
    except (InputError, UnicodeEncodeError):
        raise InputError("bad --psk: not a hex string") from None
    if not psk:
        raise InputError("bad --psk: empty")
    return psk


def open_kemac(msg: Message, psk: bytes) -> tuple[tuple[KeyData, ...], dict[str, Any]]:
    """Verify the KEMAC MAC with keys derived from ``psk`` and decrypt its Key data.

    Returns the Key data and a JSON-able report (with the derived transport keys). NULL
    encryption is accepted (the key data was in clear anyway); a NULL MAC is not, since then
    nothing authenticates the message. Raises InputError when the message has no final KEMAC
    or no RAND, AuthError when the MAC fails (DecryptError when the plaintext does not parse),
    UnsupportedAlgorithmError for algorithms we do not implement.
    """
    kemac = msg.payloads[-1] if msg.payloads else None
    if not isinstance(kemac, Kemac):
        raise InputError("--psk: message does not end with a KEMAC payload; nothing to decrypt")
    rand = msg.find(Rand)
    if rand is None:
        raise InputError("--psk: message has no RAND payload to derive the keys from")
    key_data = verify_and_decrypt(msg, psk, allow_null_encr=True)
    keys = transport_keys(psk, msg.header, rand.rand)
    report = {
        "mac": "verified",
        "transport_keys": {
            "encr_key": keys.encr_key.hex(),
            "auth_key": keys.auth_key.hex(),
            "salt_key": keys.salt_key.hex(),
        },
    }
    return key_data, report


def run_decode(args: argparse.Namespace) -> int:
    """Entry point of ``mbmsec mikey decode``; returns the exit status."""
    try:
        psk = parse_psk(args.psk) if args.psk is not None else None
        data = load_message_bytes(args.source)
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        msg = decode_message(data)
    except DecodeError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        print(f"{PROG}: malformed message: {exc.reason}{where}", file=sys.stderr)
        return 2

    key_data: tuple[KeyData, ...] | None = None
    note = ""
    extra: dict[str, Any] = {}
    failure: tuple[int, str] | None = None
    kemac = msg.find(Kemac)
    if psk is not None:
        try:
            key_data, report = open_kemac(msg, psk)
            note = "decrypted with --psk" if kemac and kemac.encr_alg else "sent in clear"
            extra["psk"] = report
        except InputError as exc:
            failure = (2, str(exc))
        except AuthError as exc:  # MAC failure or undecryptable key data
            failure = (1, f"verification failed: {exc}")
            extra["psk"] = {"mac": "failed"}
        except DecodeError as exc:
            failure = (1, f"decrypted key data does not parse: {exc}")
            extra["psk"] = {"mac": "verified", "key_data": "malformed"}
        except MbmsecError as exc:
            failure = (2, f"--psk: {exc}")
    elif kemac is not None and kemac.encr_alg == EncrAlg.NULL:
        base = msg.payload_offsets[msg.payloads.index(kemac)] + 4
        try:
            key_data = decode_key_data(kemac.encr_data, base_offset=base)
            note = "sent in clear, MAC not checked"
        except DecodeError as exc:
            print(f"{PROG}: malformed key data: {exc}", file=sys.stderr)
            return 2

    sections = describe(msg, key_data=key_data, key_data_note=note)
    if args.json:
        sys.stdout.write(render_json(msg, sections, extra))
    else:
        notes = []
        if "psk" in extra and extra["psk"].get("mac") == "verified":
            tk = extra["psk"]["transport_keys"]
            notes.append("KEMAC MAC verified with --psk (RFC 3830 §5.2)")
            notes.append(f"transport encr_key  {tk['encr_key']}")
            notes.append(f"transport auth_key  {tk['auth_key']}")
            notes.append(f"transport salt_key  {tk['salt_key']}")
        sys.stdout.write(render_text(msg, sections, notes))
    if failure is not None:
        print(f"{PROG}: {failure[1]}", file=sys.stderr)
        return failure[0]
    return 0


def register(subparsers: Any) -> None:
    """Add ``mikey`` with its ``decode`` sub-command to the top-level parser."""
    mikey = subparsers.add_parser("mikey", help="MIKEY (RFC 3830) tools")
    sub = mikey.add_subparsers(dest="mikey_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser(
        "decode",
        help="annotated dump of one MIKEY message",
        description="Decode one MIKEY message (raw binary or hex text) and print every field.",
    )
    p.add_argument(
        "source",
        nargs="?",
        default="-",
        metavar="FILE|-|HEX",
        help="file with the message, - for stdin (default), or the hex itself",
    )
    p.add_argument(
        "--psk",
        metavar="HEX",
        help="pre-shared key: verify the KEMAC MAC, decrypt and show the key data",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run_decode)
