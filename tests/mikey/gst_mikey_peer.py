"""GStreamer's MIKEY implementation as an independent peer (run by Debian's /usr/bin/python3).

Not a test module: tests/mikey/test_interop_gstreamer.py runs it in a subprocess, because the
GStreamer bindings (``gir1.2-gst-plugins-base-1.0``, ``python3-gi``) belong to the system Python,
not to the project's. It reads one JSON request on stdin and writes one JSON answer on stdout:

- ``{"probe": true}``: exit 0 when GStreamer's MIKEY library and bindings load, else exit 3.
- ``{"parse": [hex, ...]}``: each message parsed by ``gst_mikey_message_new_from_data`` (the
  function rtspsrc / rtsp-server use), answered as GStreamer's own view of every field.
- ``{"build": [spec, ...]}``: messages built with GStreamer's API (``GstSdp.MIKEYMessage.new``,
  ``set_info``, ``add_cs_srtp``, ``add_t_now_ntp_utc``, ``add_rand``, SP and KEMAC payloads,
  ``base64_encode``; or ``new_from_caps``), answered as hex plus GStreamer's re-parse of them.

Parsing goes through ctypes, because the introspection data marks the DecryptInfo argument
non-nullable (and no DecryptInfo can be created from Python), and ``parse_keymgmt`` returns a
gboolean where its GstSDPResult is declared. Field offsets of the public structs come from the
introspection data, so no struct layout is written down here.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import sys
from typing import Any

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import Gst, GstSdp
except (ImportError, ValueError) as exc:  # bindings absent
    print(json.dumps({"error": f"GStreamer bindings unavailable: {exc}"}))
    sys.exit(3)

# (struct, field) -> ctypes type, from gstmikey.h; offsets come from the typelib
_FIELD_TYPES: dict[tuple[str, str], Any] = {
    ("MIKEYMessage", "version"): ctypes.c_uint8,
    ("MIKEYMessage", "type"): ctypes.c_int,
    ("MIKEYMessage", "V"): ctypes.c_int,
    ("MIKEYMessage", "prf_func"): ctypes.c_int,
    ("MIKEYMessage", "CSB_id"): ctypes.c_uint32,
    ("MIKEYMessage", "map_type"): ctypes.c_int,
    ("MIKEYPayload", "type"): ctypes.c_int,
    ("MIKEYPayloadKEMAC", "enc_alg"): ctypes.c_int,
    ("MIKEYPayloadKEMAC", "mac_alg"): ctypes.c_int,
    ("MIKEYPayloadT", "type"): ctypes.c_int,
    ("MIKEYPayloadT", "ts_value"): ctypes.c_void_p,
    ("MIKEYPayloadRAND", "len"): ctypes.c_uint8,
    ("MIKEYPayloadRAND", "rand"): ctypes.c_void_p,
    ("MIKEYPayloadSP", "policy"): ctypes.c_uint,
    ("MIKEYPayloadSP", "proto"): ctypes.c_int,
    ("MIKEYPayloadSPParam", "type"): ctypes.c_uint8,
    ("MIKEYPayloadSPParam", "len"): ctypes.c_uint8,
    ("MIKEYPayloadSPParam", "val"): ctypes.c_void_p,
    ("MIKEYPayloadPKE", "C"): ctypes.c_int,
    ("MIKEYPayloadPKE", "data_len"): ctypes.c_uint16,
    ("MIKEYPayloadPKE", "data"): ctypes.c_void_p,
    ("MIKEYPayloadKeyData", "key_type"): ctypes.c_int,
    ("MIKEYPayloadKeyData", "key_len"): ctypes.c_uint16,
    ("MIKEYPayloadKeyData", "key_data"): ctypes.c_void_p,
    ("MIKEYPayloadKeyData", "salt_len"): ctypes.c_uint16,
    ("MIKEYPayloadKeyData", "salt_data"): ctypes.c_void_p,
    ("MIKEYPayloadKeyData", "kv_type"): ctypes.c_int,
    ("MIKEYPayloadKeyData", "kv_len"): ctypes.c_uint8 * 2,
    ("MIKEYPayloadKeyData", "kv_data"): ctypes.c_void_p * 2,
    ("MIKEYMapSRTP", "policy"): ctypes.c_uint8,
    ("MIKEYMapSRTP", "ssrc"): ctypes.c_uint32,
    ("MIKEYMapSRTP", "roc"): ctypes.c_uint32,
}
_OFFSETS: dict[tuple[str, str], int] = {}
for _struct in {s for s, _ in _FIELD_TYPES}:
    for _f in getattr(GstSdp, _struct).__info__.get_fields():
        _OFFSETS[(_struct, _f.get_name())] = _f.get_offset()

PT_KEMAC, PT_PKE, PT_T, PT_SP, PT_RAND, PT_KEY_DATA = 1, 2, 5, 10, 11, 20
TS_LEN = {0: 8, 1: 8, 2: 4}


def _lib(name: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name) or f"lib{name}.so.0"
    return ctypes.CDLL(path)


sdp = _lib("gstsdp-1.0")
gst = _lib("gstreamer-1.0")
sdp.gst_mikey_message_new_from_data.restype = ctypes.c_void_p
sdp.gst_mikey_message_new_from_data.argtypes = [
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
]
for _fn in (
    "gst_mikey_message_get_n_payloads",
    "gst_mikey_message_get_n_cs",
    "gst_mikey_payload_kemac_get_n_sub",
    "gst_mikey_payload_sp_get_n_params",
):
    getattr(sdp, _fn).restype = ctypes.c_uint
    getattr(sdp, _fn).argtypes = [ctypes.c_void_p]
for _fn in (
    "gst_mikey_message_get_payload",
    "gst_mikey_message_get_cs_srtp",
    "gst_mikey_payload_kemac_get_sub",
    "gst_mikey_payload_sp_get_param",
):
    getattr(sdp, _fn).restype = ctypes.c_void_p
    getattr(sdp, _fn).argtypes = [ctypes.c_void_p, ctypes.c_uint]
gst.gst_mini_object_unref.argtypes = [ctypes.c_void_p]


def field(struct: str, ptr: int, name: str) -> Any:
    """The value of ``struct.name`` in the C struct at ``ptr``."""
    ctype = _FIELD_TYPES[(struct, name)]
    value = ctype.from_address(ptr + _OFFSETS[(struct, name)])
    return list(value) if isinstance(value, ctypes.Array) else value.value


def raw(ptr: int | None, n: int) -> str | None:
    return None if not ptr else ctypes.string_at(ptr, n).hex()


def read_key_data(p: int) -> dict[str, Any]:
    f = "MIKEYPayloadKeyData"
    kv_len = field(f, p, "kv_len")
    kv_data = field(f, p, "kv_data")
    salt_len = field(f, p, "salt_len")
    return {
        "type": PT_KEY_DATA,
        "key_type": field(f, p, "key_type"),
        "key": raw(field(f, p, "key_data"), field(f, p, "key_len")),
        "salt": raw(field(f, p, "salt_data"), salt_len) if salt_len else None,
        "kv_type": field(f, p, "kv_type"),
        "kv": [raw(kv_data[i], kv_len[i]) or "" for i in range(2)],
    }


def read_payload(p: int) -> dict[str, Any]:
    t = field("MIKEYPayload", p, "type")
    out: dict[str, Any] = {"type": t}
    if t == PT_KEMAC:
        f = "MIKEYPayloadKEMAC"
        n = sdp.gst_mikey_payload_kemac_get_n_sub(p)
        subs = [sdp.gst_mikey_payload_kemac_get_sub(p, i) for i in range(n)]
        out.update(
            enc_alg=field(f, p, "enc_alg"),
            mac_alg=field(f, p, "mac_alg"),
            subs=[read_payload(s) for s in subs],
        )
    elif t == PT_T:
        ts_type = field("MIKEYPayloadT", p, "type")
        out.update(ts_type=ts_type, ts_value=raw(field("MIKEYPayloadT", p, "ts_value"), 8))
        out["ts_value"] = out["ts_value"][: 2 * TS_LEN[ts_type]]
    elif t == PT_RAND:
        n = field("MIKEYPayloadRAND", p, "len")
        out["rand"] = raw(field("MIKEYPayloadRAND", p, "rand"), n)
    elif t == PT_SP:
        params = []
        for i in range(sdp.gst_mikey_payload_sp_get_n_params(p)):
            q = sdp.gst_mikey_payload_sp_get_param(p, i)
            ln = field("MIKEYPayloadSPParam", q, "len")
            val = raw(field("MIKEYPayloadSPParam", q, "val"), ln) or ""
            params.append([field("MIKEYPayloadSPParam", q, "type"), val])
        out.update(
            policy=field("MIKEYPayloadSP", p, "policy"),
            proto=field("MIKEYPayloadSP", p, "proto"),
            params=params,
        )
    elif t == PT_PKE:
        n = field("MIKEYPayloadPKE", p, "data_len")
        out.update(
            C=field("MIKEYPayloadPKE", p, "C"), data=raw(field("MIKEYPayloadPKE", p, "data"), n)
        )
    elif t == PT_KEY_DATA:
        out = read_key_data(p)
    return out


def parse(hexdata: str) -> dict[str, Any]:
    """GStreamer's view of one message, or {"ok": false} when it refuses it."""
    data = bytes.fromhex(hexdata)
    msg = sdp.gst_mikey_message_new_from_data(data, len(data), None, None)
    if not msg:
        return {"ok": False}
    try:
        m = "MIKEYMessage"
        cs = []
        for i in range(sdp.gst_mikey_message_get_n_cs(msg)):
            c = sdp.gst_mikey_message_get_cs_srtp(msg, i)
            cs.append([field("MIKEYMapSRTP", c, k) for k in ("policy", "ssrc", "roc")])
        n = sdp.gst_mikey_message_get_n_payloads(msg)
        return {
            "ok": True,
            "version": field(m, msg, "version"),
            "data_type": field(m, msg, "type"),
            "v": bool(field(m, msg, "V")),
            "prf_func": field(m, msg, "prf_func"),
            "csb_id": field(m, msg, "CSB_id"),
            "map_type": field(m, msg, "map_type"),
            "cs": cs,
            "payloads": [read_payload(sdp.gst_mikey_message_get_payload(msg, i)) for i in range(n)],
        }
    finally:
        gst.gst_mini_object_unref(msg)


def _key_data(spec: dict[str, Any]) -> Any:
    kd = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.KEY_DATA)
    kd.key_data_set_key(GstSdp.MIKEYKeyDataType(spec["key_type"]), list(bytes.fromhex(spec["key"])))
    if spec.get("salt"):
        kd.key_data_set_salt(list(bytes.fromhex(spec["salt"])))
    if spec.get("spi") is not None:
        kd.key_data_set_spi(list(bytes.fromhex(spec["spi"])))
    return kd


def build(spec: dict[str, Any]) -> str:
    """Build a message with GStreamer's API and return its bytes as hex."""
    if spec.get("from_caps"):
        st = Gst.Structure.from_string(spec["from_caps"])[0]
        st.set_value("srtp-key", Gst.Buffer.new_wrapped(bytes.fromhex(spec["srtp_key"])))
        caps = Gst.Caps.new_empty()
        caps.append_structure(st)
        msg = GstSdp.MIKEYMessage.new_from_caps(caps)
    else:
        msg = GstSdp.MIKEYMessage.new()
        msg.set_info(
            1,
            GstSdp.MIKEYType(spec["data_type"]),
            spec["v"],
            GstSdp.MIKEYPRFFunc(spec["prf_func"]),
            spec["csb_id"],
            GstSdp.MIKEYMapType(spec["map_type"]),
        )
        for policy, ssrc, roc in spec.get("cs", []):
            msg.add_cs_srtp(policy, ssrc, roc)
        msg.add_t_now_ntp_utc()
        msg.add_rand(list(bytes.fromhex(spec["rand"])))
        if "sp" in spec:
            sp = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.SP)
            sp.sp_set(spec["sp"]["policy"], GstSdp.MIKEYSecProto(spec["sp"]["proto"]))
            for t, v in spec["sp"]["params"]:
                sp.sp_add_param(t, list(bytes.fromhex(v)))
            msg.add_payload(sp)
        kemac = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.KEMAC)
        kemac.kemac_set(GstSdp.MIKEYEncAlg.NULL, GstSdp.MIKEYMacAlg.NULL)
        for kd in spec["key_data"]:
            kemac.kemac_add_sub(_key_data(kd))
        msg.add_payload(kemac)
    return base64.b64decode(msg.base64_encode()).hex()


def main() -> int:
    Gst.init(None)
    req = json.load(sys.stdin)
    if req.get("probe"):
        print(json.dumps({"ok": True, "gstreamer": Gst.version_string()}))
        return 0
    out: dict[str, Any] = {"gstreamer": Gst.version_string()}
    if "parse" in req:
        out["parsed"] = [parse(h) for h in req["parse"]]
    if "build" in req:
        built = [build(s) for s in req["build"]]
        out["built"] = [{"hex": h, "parsed": parse(h)} for h in built]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
