"""The TLS-proxy baseline of the ``bmsc`` bench case: the design mbmsec does *not* use.

Keys are protected end to end by MIKEY in mbmsec, not by a TLS tunnel to a proxy. This module
keeps the alternative only to measure the difference (``mbmsec bench bmsc``):

- :class:`TlsProxy`: a TLS 1.3 terminating proxy on asyncio ``ssl`` (OpenSSL). Each client
  connection gets its own plain TCP connection to the key server and the decrypted bytes are
  relayed both ways (HAProxy ``mode tcp`` with TLS offload). Certificate and key come from
  :func:`make_self_signed`, generated with ``cryptography`` when the bench starts (ECDSA P-256,
  SAN ``localhost`` and ``127.0.0.1``).
- :class:`KeyServer`: an aiohttp server answering ``POST /keymanagement?requesttype=msk-request``
  with the BM-SC's own HTTP digest code (:class:`~mbmsec.bmsc.http_handler.HttpKeyManagement`:
  username = B-TID, password = base64(MRK), stateless nonces, replay cache, ``auth-int``
  rspauth over the answer), so the user is authenticated exactly as in the 3GPP profile. The
  difference is the answer: the MSKs themselves in a JSON body (:func:`parse_key_body`), with
  no MIKEY protection, relying on TLS between UE and proxy and on a trusted network behind it.

Neither is part of mbmsec's deployable system; both run only inside the bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..bmsc.http_handler import HttpKeyManagement
from ..bmsc.http_xml import MAX_BODY, KeyMgmtRequest
from ..errors import ConfigError, DecodeError, InvalidValueError, NotAuthorizedError
from ..gba.digest import DigestCredentials, build_authentication_info, make_authentication_info
from ..httpmsg import HttpRequest, HttpResponse
from ..mbms.keys import MskId, MskRef
from ..mbms.messages import MskKey

if TYPE_CHECKING:
    from ..bmsc.core import BmscCore, UserKeys

__all__ = [
    "CT_KEYS",
    "KeyServer",
    "KeyServerHandler",
    "TlsProxy",
    "client_context",
    "make_self_signed",
    "parse_key_body",
    "server_context",
]

CT_KEYS: Final = "application/json"
CERT_HOSTNAME: Final = "localhost"
_RELAY_CHUNK: Final = 65536

Addr = tuple[str, int]


# --- certificate and TLS contexts --------------------------------------------------------------


def make_self_signed(hostname: str = CERT_HOSTNAME) -> tuple[bytes, bytes]:
    """A fresh ECDSA P-256 key and a self-signed certificate for ``hostname`` and 127.0.0.1,
    valid for one day. Returns ``(cert_pem, key_pem)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.3 only server context with the given certificate chain and key files."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(cert_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 only client context trusting exactly ``cert_pem``, with hostname checks."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cadata=cert_pem.decode("ascii"))
    return ctx


# --- the key server ----------------------------------------------------------------------------


def _key_body(keys: list[tuple[MskRef, int, MskKey | None]]) -> bytes:
    items: list[dict[str, Any]] = []
    for ref, status, k in keys:
        item: dict[str, Any] = {
            "keyDomainId": ref.key_domain_id.hex(),
            "mskId": ref.msk_id.to_bytes().hex(),
            "status": status,
        }
        if k is not None:
            item |= {"key": k.key.hex(), "first": k.mtk_id_first, "last": k.mtk_id_last}
        items.append(item)
    return json.dumps({"msks": items}, separators=(",", ":")).encode()


def parse_key_body(body: bytes) -> list[tuple[MskRef, int, MskKey | None]]:
    """UE side: the key server's JSON answer as ``(MSK ref, status, key or None)`` items.

    Raises DecodeError (InvalidValueError) for anything malformed.
    """
    try:
        doc = json.loads(body)
        out: list[tuple[MskRef, int, MskKey | None]] = []
        for item in doc["msks"]:
            ref = MskRef(
                bytes.fromhex(item["keyDomainId"]), MskId.from_bytes(bytes.fromhex(item["mskId"]))
            )
            status = int(item["status"])
            key = None
            if status == 200:
                key = MskKey(ref, bytes.fromhex(item["key"]), int(item["first"]), int(item["last"]))
            out.append((ref, status, key))
        return out
    except DecodeError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
        # ConfigError: the key dataclasses refuse a length or range
        raise InvalidValueError(f"malformed key server answer ({type(exc).__name__})") from None


class KeyServerHandler(HttpKeyManagement):
    """The BM-SC's digest-authenticated key management, answering MSK requests with the MSKs
    in the body instead of pushing MIKEY messages (see the module docstring)."""

    def __init__(self, core: BmscCore) -> None:
        super().__init__(core)
        self.served = 0

    def _dispatch(
        self,
        body: KeyMgmtRequest,
        user: UserKeys,
        creds: DigestCredentials,
        password: bytes,
        request: HttpRequest,
        now: float,
    ) -> HttpResponse:
        if body.request_type != "msk-request":
            return HttpResponse.text(400, "the baseline key server answers MSK requests only")
        sched = self.core.scheduler
        items: list[tuple[MskRef, int, MskKey | None]] = []
        for ref in body.msks:
            svc = sched.service_for_msk(ref)
            if svc is None:
                items.append((ref, 404, None))
                continue
            try:
                self.core.authorise(user, svc)
            except NotAuthorizedError:
                items.append((ref, 403, None))
                continue
            msk = sched.msk_by_ref(ref, now)
            if msk is None:
                items.append((ref, 410, None))
                continue
            items.append((ref, 200, MskKey(msk.ref, msk.key, msk.mtk_id_first, msk.mtk_id_last)))
            self.served += 1
        resp_body = _key_body(items)
        info = make_authentication_info(creds, password=password, entity_body=resp_body)
        headers = (
            ("Content-Type", CT_KEYS),
            ("Authentication-Info", build_authentication_info(info)),
        )
        return HttpResponse(200, headers, resp_body)


class KeyServer:
    """Serve a :class:`KeyServerHandler` over plain HTTP with aiohttp (behind the proxy)."""

    def __init__(self, core: BmscCore, *, clock: Callable[[], float] = time.time) -> None:
        self.handler = KeyServerHandler(core)
        self._clock = clock
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self._http)
        self._runner: web.AppRunner | None = None
        self.address: Addr | None = None

    def __repr__(self) -> str:
        return f"KeyServer({self.address})"

    async def start(self, listen: Addr) -> Addr:
        """Listen on ``listen`` (port 0: any); return the bound address."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, listen[0], listen[1]).start()
        host, port = self._runner.addresses[0][:2]
        self.address = (str(host), int(port))
        return self.address

    async def _http(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large\n")
        req = HttpRequest(
            request.method,
            request.raw_path,
            tuple(request.headers.items()),
            body,
            peer=request.remote or "",
        )
        resp = self.handler.handle(req, self._clock())
        out = web.Response(status=resp.status, body=resp.body)
        for k, v in resp.headers:
            out.headers.add(k, v)
        return out

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


# --- the TLS-terminating proxy -----------------------------------------------------------------


class TlsProxy:
    """TLS 1.3 termination in front of ``upstream`` (see the module docstring)."""

    def __init__(self, context: ssl.SSLContext, upstream: Addr) -> None:
        self.context = context
        self.upstream = upstream
        self._server: asyncio.Server | None = None
        self.address: Addr | None = None
        self.connections = 0

    def __repr__(self) -> str:
        return f"TlsProxy({self.address} -> {self.upstream})"

    async def start(self, listen: Addr) -> Addr:
        """Listen on ``listen`` (port 0: any); return the bound address."""
        self._server = await asyncio.start_server(
            self._client, listen[0], listen[1], ssl=self.context, backlog=1024
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = (str(host), int(port))
        return self.address

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of stream or an error; then close ``writer``."""
    try:
        while data := await reader.read(_RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
