"""HTTP authentication header codec for Digest: ``WWW-Authenticate``, ``Authorization``,
``Authentication-Info``, sans-I/O.

* Syntax: RFC 7235 §2.1 (challenge / credentials, auth-param, token68), RFC 7230 §3.2.6 (token,
  quoted-string, quoted-pair), RFC 7615 (Authentication-Info = #auth-param).
* Digest parameters: RFC 2617 §3.2.1-§3.2.3, RFC 3310 §3.4 (``auts`` = base64(AUTS)).

The parser is strict and bounded (``MAX_HEADER_LEN``, ``MAX_PARAMS``, ``MAX_CHALLENGES``): any
string either parses or raises :class:`~mbmsec.errors.DigestParseError` (HTTP 400), nothing else.
Parameter names are case-insensitive and returned lower-cased; a name may occur once per
challenge. Builders quote and escape values and refuse control characters (``ValueError``), so a
header can never be split by a value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..errors import DigestParseError

__all__ = [
    "MAX_CHALLENGES",
    "MAX_HEADER_LEN",
    "MAX_PARAMS",
    "AuthChallenge",
    "AuthenticationInfo",
    "DigestChallenge",
    "DigestCredentials",
    "b64decode_strict",
    "build_authentication_info",
    "build_authorization",
    "build_www_authenticate",
    "parse_authentication_info",
    "parse_authorization",
    "parse_challenges",
    "parse_www_authenticate",
]

MAX_HEADER_LEN = 4096
MAX_PARAMS = 32
MAX_CHALLENGES = 8

# RFC 7230 §3.2.6
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 7235 §2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_T68CHAR = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset("0123456789abcdefABCDEF")
_WS = " \t"

_Params = tuple[tuple[str, str], ...]


def _bad_char(c: str) -> bool:
    """Control characters are never allowed (CTL except HTAB, RFC 7230 §3.2.6)."""
    o = ord(c)
    return (o < 0x20 and c != "\t") or o == 0x7F


# --- generic auth header scanner (RFC 7235 §2.1) -------------------------------------------------


@dataclass(frozen=True)
class AuthChallenge:
    """One challenge or credentials: scheme plus auth-params (names lower-cased) or a token68."""

    scheme: str
    params: _Params = ()
    token68: str | None = None

    def get(self, name: str) -> str | None:
        for k, v in self.params:
            if k == name:
                return v
        return None


class _Scanner:
    __slots__ = ("_n", "_pos", "_s")

    def __init__(self, s: str) -> None:
        self._s = s
        self._n = len(s)
        self._pos = 0

    def fail(self, msg: str) -> DigestParseError:
        return DigestParseError(msg, self._pos)

    def eof(self) -> bool:
        return self._pos >= self._n

    def peek(self) -> str:
        return self._s[self._pos] if self._pos < self._n else ""

    def ows(self) -> int:
        start = self._pos
        while self._pos < self._n and self._s[self._pos] in _WS:
            self._pos += 1
        return self._pos - start

    def token(self) -> str:
        start = self._pos
        while self._pos < self._n and self._s[self._pos] in _TCHAR:
            self._pos += 1
        if self._pos == start:
            raise self.fail("expected token")
        return self._s[start : self._pos]

    def quoted(self) -> str:
        # RFC 7230 §3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
        if self.peek() != '"':
            raise self.fail("expected quoted-string")
        self._pos += 1
        out: list[str] = []
        while True:
            if self._pos >= self._n:
                raise self.fail("unterminated quoted-string")
            c = self._s[self._pos]
            if c == '"':
                self._pos += 1
                return "".join(out)
            if c == "\\":
                self._pos += 1
                if self._pos >= self._n:
                    raise self.fail("unterminated quoted-pair")
                c = self._s[self._pos]
            if _bad_char(c):
                raise self.fail("control character in quoted-string")
            out.append(c)
            self._pos += 1

    def try_param_name(self) -> str | None:
        """Return a token if it is followed by BWS "=" (an auth-param), else rewind."""
        start = self._pos
        if self.peek() not in _TCHAR:
            return None
        name = self.token()
        self.ows()
        if self.peek() == "=":
            self._pos += 1
            self.ows()
            nxt = self.peek()
            if nxt in _TCHAR or nxt == '"':
                return name.lower()
        # not "name = value": maybe a token68 ("abc==") or the next challenge's scheme
        self._pos = start
        return None

    def param_value(self) -> str:
        return self.quoted() if self.peek() == '"' else self.token()

    def try_token68(self) -> str | None:
        start = self._pos
        while self._pos < self._n and self._s[self._pos] in _T68CHAR:
            self._pos += 1
        if self._pos == start:
            return None
        while self._pos < self._n and self._s[self._pos] == "=":
            self._pos += 1
        return self._s[start : self._pos]

    def list_sep(self) -> bool:
        """Consume OWS "," OWS (and empty list elements); True if a comma was seen."""
        self.ows()
        seen = False
        while self.peek() == ",":
            seen = True
            self._pos += 1
            self.ows()
        return seen

    def params(self, out: list[tuple[str, str]], limit: int) -> None:
        """Parse #auth-param into ``out`` until the input or a new challenge starts."""
        while True:
            name = self.try_param_name()
            if name is None:
                return
            if any(k == name for k, _ in out):
                raise self.fail(f"duplicate parameter {name!r}")
            if len(out) >= limit:
                raise self.fail("too many parameters")
            out.append((name, self.param_value()))
            if not self.list_sep():
                if not self.eof():
                    raise self.fail("expected ',' between parameters")
                return


def _check_size(value: str, max_len: int) -> None:
    if not isinstance(value, str):
        raise DigestParseError("header value must be str")
    if len(value) > max_len:
        raise DigestParseError(f"header value longer than {max_len} characters")


def parse_challenges(
    value: str, *, max_len: int = MAX_HEADER_LEN, max_params: int = MAX_PARAMS
) -> list[AuthChallenge]:
    """Parse a ``WWW-Authenticate`` / ``Authorization`` value into its challenges (RFC 7235).

    Raises :class:`~mbmsec.errors.DigestParseError` on any syntax error or exceeded limit.
    """
    _check_size(value, max_len)
    sc = _Scanner(value)
    out: list[AuthChallenge] = []
    sc.list_sep()
    while not sc.eof():
        if len(out) >= MAX_CHALLENGES:
            raise sc.fail("too many challenges")
        scheme = sc.token()
        params: list[tuple[str, str]] = []
        token68: str | None = None
        if sc.ows() and not sc.eof() and sc.peek() != ",":
            sc.params(params, max_params)
            if not params:
                token68 = sc.try_token68()
                if token68 is None:
                    raise sc.fail("expected auth-param or token68")
                if not sc.list_sep() and not sc.eof():
                    raise sc.fail("junk after token68")
        elif not sc.list_sep() and not sc.eof():
            raise sc.fail("expected ',' after auth-scheme")
        out.append(AuthChallenge(scheme, tuple(params), token68))
    if not out:
        raise DigestParseError("empty header value")
    return out


def _parse_param_list(value: str, max_len: int, max_params: int) -> _Params:
    # RFC 7615 §3: Authentication-Info = #auth-param
    _check_size(value, max_len)
    sc = _Scanner(value)
    params: list[tuple[str, str]] = []
    sc.list_sep()
    sc.params(params, max_params)
    if not sc.eof():
        raise sc.fail("expected auth-param")
    return tuple(params)


# --- building -----------------------------------------------------------------------------------


def _quote(v: str) -> str:
    if any(_bad_char(c) for c in v):
        raise ValueError("control character in a header parameter")
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tok(v: str) -> str:
    if not v or any(c not in _TCHAR for c in v):
        raise ValueError(f"not a token: {v!r}")
    return v


def _join(items: list[str | None]) -> str:
    return ", ".join(i for i in items if i is not None)


def _q(name: str, v: str | None) -> str | None:
    return None if v is None else f"{name}={_quote(v)}"


def _t(name: str, v: str | None) -> str | None:
    return None if v is None else f"{name}={_tok(v)}"


def _extras(extra: _Params) -> list[str | None]:
    return [f"{_tok(k)}={_quote(v)}" for k, v in extra]


def _nc_str(nc: int | None) -> str | None:
    if nc is None:
        return None
    if not 0 <= nc <= 0xFFFFFFFF:
        raise ValueError("nc out of range")
    return f"{nc:08x}"


# --- typed Digest headers ----------------------------------------------------------------------


def _parse_nc(v: str | None) -> int | None:
    # RFC 2617 §3.2.2: nc-value = 8LHEX
    if v is None:
        return None
    if len(v) != 8 or any(c not in _HEX for c in v):
        raise DigestParseError("nc must be 8 hex digits")
    return int(v, 16)


def _take(params: _Params, known: tuple[str, ...]) -> tuple[dict[str, str], _Params]:
    d = dict(params)
    return {k: d[k] for k in known if k in d}, tuple((k, v) for k, v in params if k not in known)


def _require(d: dict[str, str], name: str) -> str:
    if name not in d:
        raise DigestParseError(f"missing Digest parameter {name!r}")
    return d[name]


def _digest_scheme(value: str, max_len: int) -> AuthChallenge:
    for ch in parse_challenges(value, max_len=max_len):
        if ch.scheme.lower() == "digest":
            if ch.token68 is not None:
                raise DigestParseError("Digest takes auth-params, not token68")
            return ch
    raise DigestParseError("no Digest challenge/credentials")


@dataclass(frozen=True)
class DigestChallenge:
    """A ``WWW-Authenticate: Digest`` challenge (RFC 2617 §3.2.1)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    extra: _Params = ()


_CH_KNOWN = ("realm", "nonce", "algorithm", "qop", "opaque", "stale", "domain")


def parse_www_authenticate(value: str, *, max_len: int = MAX_HEADER_LEN) -> DigestChallenge:
    """Parse the first Digest challenge of a ``WWW-Authenticate`` value (RFC 2617 §3.2.1)."""
    ch = _digest_scheme(value, max_len)
    d, extra = _take(ch.params, _CH_KNOWN)
    qop = tuple(q.strip() for q in d["qop"].split(",") if q.strip()) if "qop" in d else ()
    if any(any(c not in _TCHAR for c in q) for q in qop):
        raise DigestParseError("qop options must be tokens")
    return DigestChallenge(
        realm=_require(d, "realm"),
        nonce=_require(d, "nonce"),
        algorithm=d.get("algorithm", "MD5"),
        qop=qop,
        opaque=d.get("opaque"),
        stale=d.get("stale", "").lower() == "true",
        domain=d.get("domain"),
        extra=extra,
    )


def build_www_authenticate(ch: DigestChallenge) -> str:
    """Return the ``WWW-Authenticate`` value for ``ch`` (RFC 2617 §3.2.1)."""
    return "Digest " + _join(
        [
            _q("realm", ch.realm),
            _q("domain", ch.domain),
            _q("nonce", ch.nonce),
            _q("opaque", ch.opaque),
            "stale=true" if ch.stale else None,
            _t("algorithm", ch.algorithm),
            _q("qop", ",".join(_tok(q) for q in ch.qop)) if ch.qop else None,
            *_extras(ch.extra),
        ]
    )


@dataclass(frozen=True)
class DigestCredentials:
    """An ``Authorization: Digest`` header (RFC 2617 §3.2.2, RFC 3310 §3.4 ``auts``)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None
    auts: bytes | None = None
    extra: _Params = ()


_CR_KNOWN = (
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "auts",
)


def b64decode_strict(v: str, what: str) -> bytes:
    """Decode strict base64 (RFC 4648 alphabet, padding). Raises DigestParseError."""
    try:
        return base64.b64decode(v.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise DigestParseError(f"{what} is not valid base64") from exc


def parse_authorization(value: str, *, max_len: int = MAX_HEADER_LEN) -> DigestCredentials:
    """Parse an ``Authorization: Digest`` value (RFC 2617 §3.2.2, RFC 3310 §3.4).

    ``response`` may be empty (the TS 24.109 Table A.3-1 initial request) or hex digits.
    Raises DigestParseError on bad syntax, missing or malformed parameters.
    """
    ch = _digest_scheme(value, max_len)
    d, extra = _take(ch.params, _CR_KNOWN)
    response = _require(d, "response")
    if response and (len(response) not in (32, 64) or any(c not in _HEX for c in response)):
        raise DigestParseError("response must be 32 or 64 hex digits")
    qop = d.get("qop")
    nc = _parse_nc(d.get("nc"))
    if qop is not None and (nc is None or "cnonce" not in d):
        raise DigestParseError("qop requires cnonce and nc")
    auts = b64decode_strict(d["auts"], "auts") if "auts" in d else None
    return DigestCredentials(
        username=_require(d, "username"),
        realm=_require(d, "realm"),
        nonce=_require(d, "nonce"),
        uri=_require(d, "uri"),
        response=response.lower(),
        algorithm=d.get("algorithm"),
        cnonce=d.get("cnonce"),
        opaque=d.get("opaque"),
        qop=qop,
        nc=nc,
        auts=auts,
        extra=extra,
    )


def build_authorization(c: DigestCredentials) -> str:
    """Return the ``Authorization`` value for ``c`` (RFC 2617 §3.2.2)."""
    return "Digest " + _join(
        [
            _q("username", c.username),
            _q("realm", c.realm),
            _q("nonce", c.nonce),
            _q("uri", c.uri),
            _q("response", c.response),
            _t("algorithm", c.algorithm),
            _q("cnonce", c.cnonce),
            _q("opaque", c.opaque),
            _t("qop", c.qop),
            _t("nc", _nc_str(c.nc)),
            _q("auts", base64.b64encode(c.auts).decode("ascii") if c.auts is not None else None),
            *_extras(c.extra),
        ]
    )


@dataclass(frozen=True)
class AuthenticationInfo:
    """An ``Authentication-Info`` header (RFC 2617 §3.2.3, RFC 7615)."""

    rspauth: str | None = None
    qop: str | None = None
    cnonce: str | None = None
    nc: int | None = None
    nextnonce: str | None = None
    extra: _Params = ()


_AI_KNOWN = ("rspauth", "qop", "cnonce", "nc", "nextnonce")


def parse_authentication_info(value: str, *, max_len: int = MAX_HEADER_LEN) -> AuthenticationInfo:
    """Parse an ``Authentication-Info`` value (RFC 2617 §3.2.3). Raises DigestParseError."""
    d, extra = _take(_parse_param_list(value, max_len, MAX_PARAMS), _AI_KNOWN)
    return AuthenticationInfo(
        rspauth=d.get("rspauth"),
        qop=d.get("qop"),
        cnonce=d.get("cnonce"),
        nc=_parse_nc(d.get("nc")),
        nextnonce=d.get("nextnonce"),
        extra=extra,
    )


def build_authentication_info(info: AuthenticationInfo) -> str:
    """Return the ``Authentication-Info`` value for ``info`` (RFC 2617 §3.2.3)."""
    return _join(
        [
            _q("nextnonce", info.nextnonce),
            _t("qop", info.qop),
            _q("rspauth", info.rspauth),
            _q("cnonce", info.cnonce),
            _t("nc", _nc_str(info.nc)),
            *_extras(info.extra),
        ]
    )
