"""hypothesis round trips over generated MIKEY messages and key data chains (every payload)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.errors import ConfigError, InvalidValueError
from mbmsec.mikey.codec import (
    DecodeOptions,
    decode_key_data,
    decode_message,
    encode_key_data,
    encode_message,
)
from mbmsec.mikey.constants import (
    DH_VALUE_LENGTHS,
    HASH_LENGTHS,
    MAC_LENGTHS,
    SALTED_KEY_DATA_TYPES,
    CsIdMapType,
    DataType,
    DhGroup,
    ExtType,
    HashFunc,
    KeyDataType,
    MacAlg,
    PrfFunc,
    TsType,
)
from mbmsec.mikey.payloads import (
    Cert,
    Chash,
    Dh,
    ErrorPayload,
    GeneralExtension,
    GenericIdEntry,
    Header,
    IdPayload,
    Kemac,
    KeyData,
    KeyIdEntry,
    KeyIdExtension,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    SrtpIdEntry,
    Timestamp,
    Verification,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def blob(max_size: int, min_size: int = 0) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


kv_data = st.one_of(st.none(), blob(8), st.tuples(blob(6), blob(6)))

srtp_entry = st.builds(SrtpIdEntry, u8, u32, u32)
generic_entry = st.builds(GenericIdEntry, u8, u8, st.booleans(), blob(5), blob(12), blob(6))


@st.composite
def headers(draw: st.DrawFn) -> Header:
    map_type = draw(st.sampled_from(list(CsIdMapType)))
    cs_map: tuple[SrtpIdEntry, ...] | tuple[GenericIdEntry, ...] = ()
    empty_cs = 0
    if map_type == CsIdMapType.SRTP_ID:
        cs_map = tuple(draw(st.lists(srtp_entry, max_size=4)))
    elif map_type == CsIdMapType.GENERIC_ID:
        cs_map = tuple(draw(st.lists(generic_entry, max_size=3)))
    else:
        empty_cs = draw(u8)
    return Header(
        data_type=draw(st.one_of(st.sampled_from(list(DataType)), u8)),
        csb_id=draw(u32),
        v=draw(st.booleans()),
        prf_func=draw(st.one_of(st.sampled_from(list(PrfFunc)), st.integers(0, 0x7F))),
        cs_id_map_type=map_type,
        cs_map=cs_map,
        empty_map_cs=empty_cs,
    )


def _mac_for(alg: MacAlg) -> st.SearchStrategy[bytes]:
    n = MAC_LENGTHS[alg]
    return blob(n, n)


kemacs = st.sampled_from(list(MacAlg)).flatmap(
    lambda alg: st.builds(Kemac, u8, blob(60), st.just(alg), _mac_for(alg))
)
verifications = st.sampled_from(list(MacAlg)).flatmap(
    lambda alg: st.builds(Verification, st.just(alg), _mac_for(alg))
)
dhs = st.sampled_from(list(DhGroup)).flatmap(
    lambda g: st.builds(
        Dh,
        st.just(g),
        blob(DH_VALUE_LENGTHS[g], DH_VALUE_LENGTHS[g]),
        kv_data,
        st.integers(0, 15),
    )
)
chashes = st.sampled_from(list(HashFunc)).flatmap(
    lambda f: st.builds(Chash, st.just(f), blob(HASH_LENGTHS[f], HASH_LENGTHS[f]))
)
timestamps = st.one_of(
    st.builds(Timestamp, st.sampled_from([TsType.NTP_UTC, TsType.NTP]), st.integers(0, 2**64 - 1)),
    st.builds(Timestamp, st.just(TsType.COUNTER), u32),
)
payloads_no_sign: st.SearchStrategy[Payload] = st.one_of(
    kemacs,
    st.builds(Pke, st.integers(0, 3), blob(40)),
    dhs,
    timestamps,
    st.builds(IdPayload, u8, blob(40)),
    st.builds(Cert, u8, blob(40)),
    chashes,
    verifications,
    st.builds(SecurityPolicy, u8, u8, st.lists(st.tuples(u8, blob(6)), max_size=5).map(tuple)),
    st.builds(Rand, blob(32, 1)),
    st.builds(ErrorPayload, u8, u16),
    st.builds(GeneralExtension, u8.filter(lambda t: t != ExtType.KEY_ID), blob(30)),
    st.builds(KeyIdExtension, st.lists(st.builds(KeyIdEntry, u8, blob(8)), max_size=4).map(tuple)),
)
signs = st.builds(Sign, st.integers(0, 15), blob(80))


@st.composite
def messages(draw: st.DrawFn) -> tuple[Header, list[Payload]]:
    ps = draw(st.lists(payloads_no_sign, max_size=10))
    if draw(st.booleans()):
        ps.append(draw(signs))
    return draw(headers()), ps


@settings(max_examples=400, deadline=None)
@given(messages())
def test_message_round_trip(msg: tuple[Header, list[Payload]]) -> None:
    header, payloads = msg
    # RFC 4563 §5: SP with the empty map only through the lenient switches, never strictly
    empty_map_sp = header.cs_id_map_type == CsIdMapType.EMPTY and any(
        isinstance(p, SecurityPolicy) for p in payloads
    )
    raw = encode_message(header, payloads, allow_empty_map_sp=empty_map_sp)
    if empty_map_sp:
        with pytest.raises(InvalidValueError):
            decode_message(raw)
        with pytest.raises(ConfigError):
            encode_message(header, payloads)
    m = decode_message(raw, DecodeOptions(lenient_empty_map_sp=empty_map_sp))
    assert m.header == header
    assert m.payloads == tuple(payloads)
    assert encode_message(m.header, m.payloads, allow_empty_map_sp=empty_map_sp) == raw
    assert len(m.payload_offsets) == len(payloads)
    if payloads and isinstance(payloads[-1], Kemac | Verification):
        assert m.mac_offset == len(raw) - len(payloads[-1].mac)
        without = encode_message(
            header, payloads, without_final_mac=True, allow_empty_map_sp=empty_map_sp
        )
        assert without == m.mac_input
    else:
        assert m.mac_offset is None
    if payloads and isinstance(payloads[-1], Sign):
        assert m.signature_offset == len(raw) - len(payloads[-1].signature)


@st.composite
def key_datas(draw: st.DrawFn) -> KeyData:
    t = draw(st.sampled_from(list(KeyDataType)))
    salt = draw(blob(20)) if t in SALTED_KEY_DATA_TYPES else None
    return KeyData(t, draw(blob(40, 1)), salt, draw(kv_data))


@settings(max_examples=300, deadline=None)
@given(st.lists(key_datas(), max_size=6))
def test_key_data_chain_round_trip(items: list[KeyData]) -> None:
    raw = encode_key_data(items)
    assert decode_key_data(raw) == tuple(items)
    assert encode_key_data(decode_key_data(raw)) == raw


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([30, 46]), kv_data, st.data())
def test_lenient_key_salt_concat_round_trip(n: int, kv: object, data: st.DataObject) -> None:
    key = data.draw(blob(n, n))
    raw = encode_key_data([KeyData(KeyDataType.TEK, key, kv_data=kv)])  # type: ignore[arg-type]
    (strict,) = decode_key_data(raw)
    assert strict.key == key and strict.salt is None
    (lenient,) = decode_key_data(raw, DecodeOptions(lenient_key_salt_concat=True))
    assert lenient.salt_concat and lenient.key + (lenient.salt or b"") == key
    assert len(lenient.salt or b"") == 14
    assert encode_key_data([lenient]) == raw
