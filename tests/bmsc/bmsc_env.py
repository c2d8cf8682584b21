"""Test environment for the BM-SC core: a real HSS + BSF (sans-I/O), UEs bootstrapped through
it with the real GBA client, and a BM-SC whose Zn lookups go to that BSF. Virtual time only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mbmsec.bmsc.core import BmscConfig, BmscCore
from mbmsec.bmsc.zn import LocalZnLookup, ZnLookup
from mbmsec.gba.bsf import Bsf, BsfConfig, NafCredential
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.digest import build_authorization, naf_password, parse_www_authenticate, respond
from mbmsec.gba.hss import Hss, make_subscriber
from mbmsec.gba.kdf import UA_MBMS, naf_id
from mbmsec.httpmsg import HttpRequest, HttpResponse
from mbmsec.mbms.compact import (
    KeyErrorReply,
    PendingKeyRequest,
    build_key_request,
    check_key_response,
)
from mbmsec.mbms.keys import GbaMode, KeyRef, MukId, derive_mbms_user_keys
from mbmsec.mbms.messages import MskMessage
from mbmsec.store.bmsc_protocols import BmscStore, ServiceRecord
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
DOMAIN = "bsf.home1.net"
FQDN = "bmsc.home1.net"
NAF_ID = naf_id(FQDN, UA_MBMS)
TOKEN = "zn-token"
T0 = 1_700_000_000.0
KD = bytes.fromhex("62f210")
USERS = ("alice@home1.net", "bob@home1.net", "carol@home1.net")


class Rng:
    """Deterministic rng from SHA-256 of (seed, counter)."""

    def __init__(self, seed: str) -> None:
        self.seed = seed.encode()
        self.n = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.n += 1
            out += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
        return out[:n]


def service(sid: str = "urn:svc:news", group: int = 1, **kw: object) -> ServiceRecord:
    base: dict[str, object] = {
        "msk_lifetime": 600.0,
        "mtk_lifetime": 60.0,
        "msk_lead": 120.0,
        "mtk_lead": 5.0,
        "announce_interval": 20.0,
        "start": T0,
    }
    base.update(kw)
    return ServiceRecord(sid, KD, group, "239.1.1.1", 5000 + group, **base)  # type: ignore[arg-type]


def make_bsf(key_lifetime: float = 86400.0, uicc_users: tuple[str, ...] = ()) -> Bsf:
    subs = MemorySubscriberStore()
    for u in USERS:
        subs.add(make_subscriber(u, K.hex(), opc=OPC.hex(), uicc=u in uicc_users))
    cfg = BsfConfig(
        domain=DOMAIN,
        key_lifetime=key_lifetime,
        naf_credentials=(NafCredential("bmsc", TOKEN, (FQDN,)),),
    )
    return Bsf(cfg, Hss(subs, Rng("hss")), MemoryBootstrapSessionStore())


def make_core(
    store: BmscStore,
    bsf: Bsf | None = None,
    zn: ZnLookup | None = None,
    seed: str = "bmsc",
    **cfg: object,
) -> BmscCore:
    if zn is None:
        assert bsf is not None
        zn = LocalZnLookup(bsf, NAF_ID, ("bmsc", TOKEN))
    return BmscCore(BmscConfig(fqdn=FQDN, **cfg), store, zn, Rng(seed))  # type: ignore[arg-type]


@dataclass
class Ue:
    """A UE: bootstrapped with the real GBA client; keys derived as TS 33.246 says."""

    impi: str
    btid: str
    mrk: bytes = field(repr=False)
    muk: bytes = field(repr=False)
    rng: Rng
    port: int = 40000

    @property
    def muk_id(self) -> MukId:
        return MukId.of(FQDN, self.btid)

    def request(self, now: float, **ref: object) -> tuple[bytes, PendingKeyRequest]:
        key_ref = KeyRef(**ref) if ref else KeyRef(service_id="urn:svc:news")  # type: ignore[arg-type]
        return build_key_request(
            btid=self.btid, key_ref=key_ref, mrk=self.mrk, now=now, rng=self.rng
        )

    def check(self, data: bytes, pending: PendingKeyRequest) -> MskMessage | KeyErrorReply:
        return check_key_response(data, pending, muk=self.muk, mrk=self.mrk, muk_id=self.muk_id)

    def http(self, core: BmscCore, rtype: str, body: bytes, now: float) -> HttpResponse:
        """Run one HTTP key management request with digest authentication."""
        target = f"/keymanagement?requesttype={rtype}"
        first = core.handle_http(HttpRequest("POST", target, (), body, peer="10.0.0.7"), now)
        assert first.status == 401
        ch = parse_www_authenticate(first.header("WWW-Authenticate") or "")
        creds = respond(
            ch,
            username=self.btid,
            password=naf_password(self.mrk),
            method="POST",
            uri=target,
            cnonce=self.rng(8).hex(),
            entity_body=body,
        )
        headers = (("Authorization", build_authorization(creds)),)
        self.last_request = HttpRequest("POST", target, headers, body, peer="10.0.0.7")
        return core.handle_http(self.last_request, now)


def bootstrap(bsf: Bsf, impi: str, now: float) -> Ue:
    """Bootstrap ``impi`` (GBA_ME) through the BSF; MRK = MUK = Ks_NAF (keys.py)."""
    rng = Rng("ue-" + impi + str(now))
    c = BootstrapClient(impi, GbaUicc(K, OPC), realm=DOMAIN, rng=rng)
    req: HttpRequest | None = c.start(now)
    while req is not None:
        req = c.receive(bsf.handle(req, now), now)
    assert c.result is not None
    keys = derive_mbms_user_keys(GbaMode.GBA_ME, ks_naf=c.naf_key(NAF_ID, now))
    return Ue(impi, c.result.btid, keys.mrk, keys.muk, rng)
