"""BSF edge cases, sans-I/O: SQN space exhausted, subscriber removed mid-run, one INFO log line
per request (the HSS detail lines are DEBUG)."""

from __future__ import annotations

import logging

import pytest

from mbmsec.gba.aka import SQN_MAX, SqnState, next_sqn, sqn_join
from mbmsec.gba.bsf import Bsf, BsfConfig
from mbmsec.gba.client import BootstrapClient, BootstrapError, GbaUicc
from mbmsec.gba.hss import Hss, make_subscriber
from mbmsec.httpmsg import HttpRequest, HttpResponse
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
DOMAIN = "bsf.home1.net"
SEQ_MAX = (1 << 43) - 1


class Rng:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, n: int) -> bytes:
        self.n += 1
        return (self.n.to_bytes(4, "big") * ((n + 3) // 4))[:n]


def make(impi: str, sqn: int) -> tuple[Bsf, MemorySubscriberStore]:
    subs = MemorySubscriberStore()
    subs.add(make_subscriber(impi, K.hex(), opc=OPC.hex(), sqn=sqn))
    return Bsf(BsfConfig(domain=DOMAIN), Hss(subs, Rng()), MemoryBootstrapSessionStore()), subs


def initial(impi: str) -> HttpRequest:
    auth = f'Digest username="{impi}", realm="{DOMAIN}", nonce="", uri="/", response=""'
    return HttpRequest("GET", "/", (("Authorization", auth),), peer="127.0.0.1")


def infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


def test_sqn_exhausted_is_403_one_line(caplog: pytest.LogCaptureFixture) -> None:
    bsf, subs = make("full@h", SQN_MAX)
    with caplog.at_level(logging.DEBUG, logger="mbmsec"):
        resp = bsf.handle(initial("full@h"), 0.0)
    assert resp.status == 403
    assert infos(caplog) == ["ub sqn exhausted"]
    assert (subs.get("full@h") or make_subscriber("x", K.hex(), opc=OPC.hex())).sqn == SQN_MAX


def test_resync_to_the_last_sqn_then_exhausted(caplog: pytest.LogCaptureFixture) -> None:
    # the USIM claims SQN_MS = the largest SQN: resync succeeds, the next AV cannot be made
    bsf, _ = make("u@h", 0)
    top = sqn_join(SEQ_MAX, 31)
    c = BootstrapClient(
        "u@h",
        GbaUicc(K, OPC, sqn_state=SqnState((SEQ_MAX,) * 32, top)),
        realm=DOMAIN,
        rng=Rng(),
    )
    req: HttpRequest | None = c.start(0.0)
    statuses = []
    with caplog.at_level(logging.INFO, logger="mbmsec"):
        while req is not None and len(statuses) < 5:
            resp: HttpResponse = bsf.handle(req, 0.0)
            statuses.append(resp.status)
            try:
                req = c.receive(resp, 0.0)
            except Exception:
                break
    assert statuses == [401, 403]
    assert infos(caplog)[-1] == "ub sqn exhausted"


def test_subscriber_removed_between_check_and_av(caplog: pytest.LogCaptureFixture) -> None:
    bsf, subs = make("gone@h", 0)

    class Vanishing(Hss):
        def subscriber(self, impi: str):  # type: ignore[no-untyped-def]
            s = super().subscriber(impi)
            subs.remove(impi)  # a concurrent `mbmsec hss remove`
            return s

    bsf.hss = Vanishing(subs, Rng())
    with caplog.at_level(logging.INFO, logger="mbmsec"):
        resp = bsf.handle(initial("gone@h"), 0.0)
    assert resp.status == 403
    assert infos(caplog) == ["ub unknown IMPI"]


def test_one_info_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    bsf, _ = make("u@h", 0)
    ahead = SqnState().accept(next_sqn(5000 << 5))  # forces a resync round
    c = BootstrapClient("u@h", GbaUicc(K, OPC, sqn_state=ahead), realm=DOMAIN, rng=Rng())
    req: HttpRequest | None = c.start(0.0)
    lines_per_request = []
    while req is not None:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mbmsec"):
            resp = bsf.handle(req, 0.0)
        lines_per_request.append((resp.status, infos(caplog)))
        req = c.receive(resp, 0.0)
    assert [s for s, _ in lines_per_request] == [401, 401, 200]
    assert all(len(lines) == 1 for _, lines in lines_per_request), lines_per_request
    assert lines_per_request[1][1] == ["ub resync, new challenge"]


def test_gba_u_failed_rebootstrap_never_yields_a_wrong_key() -> None:
    # TS 33.220 G.1: a new GBA_U bootstrap replaces Ks in the UICC as soon as AUTHENTICATE runs.
    # If the run then fails, the old B-TID's Ks_ext_NAF is gone: the client must say so instead
    # of deriving a key from the new Ks that no NAF will ever share.
    from mbmsec.errors import KeyUnavailableError
    from mbmsec.gba.kdf import UA_MBMS, naf_id
    from mbmsec.gba.zn import ZN_PATH, ZnAnswer, ZnRequest

    subs = MemorySubscriberStore()
    subs.add(make_subscriber("u@h", K.hex(), opc=OPC.hex(), uicc=True))
    from mbmsec.gba.bsf import NafCredential

    cfg = BsfConfig(domain=DOMAIN, naf_credentials=(NafCredential("n", "token-123456"),))
    bsf = Bsf(cfg, Hss(subs, Rng()), MemoryBootstrapSessionStore())
    naf = naf_id("bmsc.h", UA_MBMS)
    c = BootstrapClient("u@h", GbaUicc(K, OPC, gba_u=True), realm=DOMAIN, rng=Rng())
    req: HttpRequest | None = c.start(0.0)
    while req is not None:
        req = c.receive(bsf.handle(req, 0.0), 0.0)
    assert c.result is not None and c.bootstrapped(1.0)
    zn = HttpRequest(
        "POST",
        ZN_PATH,
        (("Authorization", "Bearer token-123456"),),
        ZnRequest(c.result.btid, naf).to_json(),
    )
    assert c.naf_key(naf, 1.0) == ZnAnswer.from_json(bsf.handle(zn, 1.0).body).me_key
    # re-bootstrap: challenge answered by the UICC, then the BSF is unreachable
    again = bsf.handle(c.start(2.0), 2.0)
    assert c.receive(again, 2.0) is not None
    with pytest.raises(BootstrapError):
        c.receive(HttpResponse(503), 2.0)
    assert not c.bootstrapped(3.0)
    with pytest.raises(KeyUnavailableError):
        c.naf_key(naf, 3.0)
