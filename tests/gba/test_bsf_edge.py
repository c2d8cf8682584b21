"""BSF edge cases, sans-I/O: SQN space exhausted, subscriber removed mid-run, one INFO log line
per request (the HSS detail lines are DEBUG)."""

from __future__ import annotations

import logging

import pytest

from mbmsec.gba.aka import SQN_MAX, SqnState, next_sqn, sqn_join
from mbmsec.gba.bsf import Bsf, BsfConfig
from mbmsec.gba.client import BootstrapClient, GbaUicc
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
