"""tshark reads mbmsec.pcap captures: checksums verify, HTTP over TCP reassembles."""

from __future__ import annotations

from pathlib import Path

import pytest
from tshark_harness import SEVERITY_WARN, assert_clean, dissect

from mbmsec.pcap import PcapWriter, add_http_exchange

CHECKSUMS = (
    "ip.check_checksum:TRUE",
    "udp.check_checksum:TRUE",
    "tcp.check_checksum:TRUE",
    "tcp.desegment_tcp_streams:TRUE",
    "http.desegment_body:TRUE",
)

BODY = b'<?xml version="1.0"?>\n<mbmsMSKRequest>' + b"k" * 4000 + b"</mbmsMSKRequest>\n"
REQUEST = (
    b"POST /keymanagement?requesttype=msk-request HTTP/1.1\r\n"
    b"Host: bmsc.home1.net\r\n"
    b"Content-Type: application/mbms-msk+xml\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/mbms-msk-response+xml\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (("10.0.0.1", 50000), ("10.0.0.2", 80)),
        (("2001:db8::1", 50001), ("2001:db8::2", 80)),
    ],
)
def test_http_exchange_reassembles(
    tmp_path: Path, client: tuple[str, int], server: tuple[str, int]
) -> None:
    w = PcapWriter()
    add_http_exchange(w, client, server, REQUEST, RESPONSE, 1700000000.0, mss=1000)
    path = tmp_path / "http.pcap"
    path.write_bytes(w.getvalue())
    pkts = dissect(path, CHECKSUMS)
    assert len(pkts) == len(w)
    requests = [p for p in pkts if p.find("http.request.method")]
    responses = [p for p in pkts if p.find("http.response.code")]
    assert len(requests) == 1 and len(responses) == 1
    req = requests[0]
    assert req.find("http.request.method")[0].show == "POST"
    assert req.find("http.request.uri")[0].show == "/keymanagement?requesttype=msk-request"
    assert req.find("http.content_length")[0].show == str(len(BODY))
    # the body spans 5 segments and was reassembled whole
    assert req.find("tcp.reassembled.length")[0].int == len(REQUEST)
    assert responses[0].find("http.response.code")[0].show == "200"
    for p in pkts:
        for name in ("ip.checksum.status", "tcp.checksum.status"):
            for f in p.find(name):
                assert f.show == "1", f"frame {p.number}: {name} = {f.show}"
        assert not p.find("tcp.analysis.flags"), f"frame {p.number}: TCP analysis flagged"
        assert_clean(p)
    # the closing handshake produces TCP notes, never warnings
    assert all(e.severity < SEVERITY_WARN for p in pkts for e in p.experts())


def test_udp_checksums_verify(tmp_path: Path) -> None:
    w = PcapWriter()
    for i, n in enumerate((0, 1, 7, 100, 1400)):
        data = bytes(k % 256 for k in range(n))
        w.add_udp(("192.0.2.10", 40000 + i), ("192.0.2.20", 5000), data, i)
        w.add_udp(("2001:db8::10", 40000 + i), ("2001:db8::20", 5000), b"\xff" * n, i + 0.5)
    path = tmp_path / "udp.pcap"
    path.write_bytes(w.getvalue())
    pkts = dissect(path, CHECKSUMS)
    assert len(pkts) == 10
    for p in pkts:
        assert p.proto("udp").one("udp.checksum.status").show == "1"
        assert_clean(p)


def test_corrupted_payload_is_caught(tmp_path: Path) -> None:
    """The checks above are live: one flipped payload bit makes tshark report a bad checksum."""
    w = PcapWriter()
    w.add_udp(("192.0.2.10", 40000), ("192.0.2.20", 5000), b"payload", 0.0)
    data = bytearray(w.getvalue())
    data[-1] ^= 0x01
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(data))
    [p] = dissect(path, CHECKSUMS)
    assert p.proto("udp").one("udp.checksum.status").show == "0"
    with pytest.raises(AssertionError):
        assert_clean(p)


def test_missing_tshark_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tshark_harness

    monkeypatch.setattr(tshark_harness.shutil, "which", lambda _name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        tshark_harness.tshark_path()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        tshark_harness.tshark_path()
