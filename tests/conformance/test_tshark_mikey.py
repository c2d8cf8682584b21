"""Wireshark's MIKEY dissector reads what we send (hand-written vectors).

Each message goes into a pcap as UDP to port 2269 (the IANA "mikey" port, which tshark
dissects as MIKEY); tshark must show no malformed layer, no expert warning or error, dissect
every byte of the message, and show the field values we put there.

What Wireshark 4.0 (packet-mikey.c, as shipped in Debian 12's 4.0.17) does with the parts of
our profile it predates, found by reading its source and running it:
- CS ID map type 1 (RFC 4563 empty map): the value table knows only 0 (SRTP-ID), so the field
  reads "CS ID map type: Unknown (1)". With #CS = 0 no map entry is parsed, so nothing else
  changes and no expert item is added.
- General Extension type 3 (RFC 4563 Key ID): the type table knows 0 (Vendor-ID) and 1
  (SDP-IDs), so "Extension type: Unknown (3)"; the Key ID sub-payloads are shown as one raw
  ``mikey.ext.data`` byte field. No expert item.
- T payload with a COUNTER: the dissector steps over the 6 bytes but adds no field for the
  counter value (only NTP values get ``mikey.t.ntp``).
- KEMAC with NULL encryption in a PSK init: only the first Key data sub-payload of the chain is
  dissected (``mikey.key.*``); later sub-payloads stay inside the KEMAC item undissected.
- A zero-length MAC (MAC alg NULL) is added as an empty ``mikey.kemac.mac`` item.
None of these produce an expert item, so the tests assert "no expert items at all" for MIKEY.
"""

from __future__ import annotations

from pathlib import Path

from tshark_harness import Field, Packet, assert_clean, dissect

from mbmsec.pcap import PcapWriter

MIKEY_PORT = 2269
UE = ("192.0.2.10", 40000)
BMSC = ("192.0.2.1", MIKEY_PORT)

# spec-digest §5.2: PSK I_MESSAGE, HDR(v1, PSK, V=1, PRF 0, CSB 0x11223344, #CS 0, map 1) |
# T(COUNTER 1) | RAND(00..0f) | KEMAC(AES-CM-128, 20 bytes, HMAC-SHA-1-160).
SPEC_I_MESSAGE = bytes.fromhex(
    "010005801122334400010b02000000010110000102030405060708090a0b0c0d0e0f0001001437"
    "49766af07ac1b0c66cef5bbc3c1bb4b28760a2010b8bc7161bc6529e5a5a19f0dfc117270661828c"
)
SPEC_KEMAC_ENCR = bytes.fromhex("3749766af07ac1b0c66cef5bbc3c1bb4b28760a2")
SPEC_KEMAC_MAC = bytes.fromhex("0b8bc7161bc6529e5a5a19f0dfc117270661828c")

# Hand-built NULL-encryption twin with a Key ID extension, carrying one TEK+SALT key data
# sub-payload with an Interval KV; MAC alg NULL (a dissector-only vector: no MAC to check).
NULL_TWIN = bytes.fromhex(
    "01 00 15 00 11223344 00 01"  # HDR: v1, PSK init, next EXT, V=0, PRF 0, CSB, #CS 0, map 1
    "05 03 000f 00 03 aabbcc 01 04 01020304 02 02 0005"  # EXT Key ID: domain, MSK ID, MTK ID
    "0b 02 00000007"  # T: next RAND, COUNTER 7
    "01 10 000102030405060708090a0b0c0d0e0f"  # RAND: next KEMAC, 16 bytes
    "00 00 002a"  # KEMAC: last, encr NULL, 42 bytes of key data
    "00 32 0010 11111111111111111111111111111111"  # key data: last, TEK+SALT, KV interval, key
    "000e 2222222222222222222222222222"  # salt, 14 bytes
    "02 0004 02 0009"  # valid from 0x0004, valid to 0x0009
    "00"  # MAC alg NULL, no MAC
)


def capture(tmp_path: Path, messages: list[bytes]) -> list[Packet]:
    w = PcapWriter()
    for i, m in enumerate(messages):
        w.add_udp(BMSC, UE if i % 2 else ("192.0.2.11", MIKEY_PORT), m, 1700000000.0 + i)
    path = tmp_path / "mikey.pcap"
    path.write_bytes(w.getvalue())
    pkts = dissect(path, ("udp.check_checksum:TRUE",))
    assert len(pkts) == len(messages)
    return pkts


def payload_items(pkt: Packet) -> list[Field]:
    """The top-level payload items under the MIKEY layer, checked to tile it exactly."""
    mikey = pkt.proto("mikey")
    items = mikey.children
    pos = mikey.pos
    for it in items:
        assert it.pos == pos, f"{it.name} at {it.pos}, expected {pos}"
        pos += it.size
    assert pos == mikey.pos + mikey.size, "dissector stopped before the end of the message"
    return items


def test_spec_digest_i_message(tmp_path: Path) -> None:
    [pkt] = capture(tmp_path, [SPEC_I_MESSAGE])
    assert_clean(pkt)
    assert not pkt.experts()
    mikey = pkt.proto("mikey")
    assert mikey.size == len(SPEC_I_MESSAGE)
    items = payload_items(pkt)
    assert [i.name for i in items] == ["mikey.hdr", "mikey.t", "mikey.rand", "mikey.kemac"]
    assert [i.size for i in items] == [10, 6, 18, 45]
    hdr, t, rand, kemac = items
    assert hdr.one("mikey.version").int == 1
    assert hdr.one("mikey.type").int == 0
    assert hdr.one("mikey.next_payload").int == 5
    assert hdr.one("mikey.v.set").int == 1
    assert hdr.one("mikey.prf_func").int == 0
    assert hdr.one("mikey.csb_id").int == 0x11223344
    assert hdr.one("mikey.cs_count").int == 0
    assert hdr.one("mikey.cs_id_map_type").int == 1
    assert t.one("mikey.next_payload").int == 11
    assert t.one("mikey.t.ts_type").int == 2
    assert rand.one("mikey.next_payload").int == 1
    assert rand.one("mikey.rand.len").int == 16
    assert rand.one("mikey.rand.data").raw == bytes(range(16))
    assert kemac.one("mikey.next_payload").int == 0
    assert kemac.one("mikey.kemac.encr_alg").int == 1
    assert kemac.one("mikey.kemac.key_data_len").int == 20
    assert kemac.one("mikey.kemac.key_data").raw == SPEC_KEMAC_ENCR
    assert kemac.one("mikey.kemac.mac_alg").int == 1
    assert kemac.one("mikey.kemac.mac").raw == SPEC_KEMAC_MAC


def test_null_twin_shows_key_data(tmp_path: Path) -> None:
    [pkt] = capture(tmp_path, [NULL_TWIN])
    assert_clean(pkt)
    assert not pkt.experts()
    items = payload_items(pkt)
    assert [i.name for i in items] == [
        "mikey.hdr",
        "mikey.ext",
        "mikey.t",
        "mikey.rand",
        "mikey.kemac",
    ]
    ext = items[1]
    assert ext.one("mikey.ext.type").int == 3
    assert ext.one("mikey.ext.type").showname == "Extension type: Unknown (3)"
    assert ext.one("mikey.ext.len").int == 15
    assert ext.one("mikey.ext.data").raw == bytes.fromhex("0003aabbcc01040102030402020005")
    assert items[0].one("mikey.cs_id_map_type").showname == "CS ID map type: Unknown (1)"
    kemac = items[4]
    assert kemac.one("mikey.kemac.encr_alg").int == 0
    key = kemac.one("mikey.key")
    assert key.size == 42
    assert key.one("mikey.key.type").int == 3
    assert key.one("mikey.key.kv").int == 2
    assert key.one("mikey.key.data.len").int == 16
    assert key.one("mikey.key.data").raw == b"\x11" * 16
    assert key.one("mikey.key.salt.len").int == 14
    assert key.one("mikey.key.salt").raw == b"\x22" * 14
    assert key.one("mikey.key.kv.from").raw == b"\x00\x04"
    assert key.one("mikey.key.kv.to").raw == b"\x00\x09"
    assert kemac.one("mikey.kemac.mac_alg").int == 0
    assert kemac.one("mikey.kemac.mac").size == 0


def test_truncated_message_is_flagged(tmp_path: Path) -> None:
    """The harness sees a real fault: a message cut inside the KEMAC is malformed for tshark."""
    [pkt] = capture(tmp_path, [SPEC_I_MESSAGE[:50]])
    assert pkt.has_proto("_ws.malformed")
