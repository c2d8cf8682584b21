"""What the demo watches: the drivers' taps and the UEs' events, turned into counters.

:class:`Observer` is handed to the components as callbacks: ``ue_tap`` / ``bmsc_tap`` /
``udp_tap`` (one call per UDP datagram sent), ``bsf_http`` / ``bmsc_http`` (one call per
HTTP exchange served, from :func:`.capture.http_tap_middleware`) and ``on_ue_event`` (each UE
key client event). It feeds the report counters (:class:`.report.DemoMetrics`), the capture
and the key log. Callbacks never raise into the drivers.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from ..bmsc.core import BmscCore
from ..mikey.codec import decode_message
from ..mikey.constants import DataType
from ..mikey.payloads import IdPayload
from ..srtp import SrtpKey
from ..ue import events as ev
from .capture import Capture
from .keylog import KeyLog
from .progress import ProgressState
from .report import DeliverySample, DemoMetrics
from .world import UeHandle

__all__ = ["Observer", "is_mtk_message"]

Addr = tuple[str, int]


def is_mtk_message(data: bytes) -> bool:
    """True for an MTK message: PSK init without ID payloads (docs/protocol.md §6)."""
    try:
        msg = decode_message(data)
    except Exception:
        return False
    return msg.header.data_type == DataType.PSK_INIT and msg.find(IdPayload) is None


class Observer:
    """Counters, capture and key log fed by the components (see the module docstring)."""

    def __init__(
        self,
        metrics: DemoMetrics,
        progress: ProgressState,
        capture: Capture | None,
        keylog: KeyLog,
    ) -> None:
        self.metrics = metrics
        self.progress = progress
        self.capture = capture
        self.keylog = keylog
        self.by_addr: dict[Addr, UeHandle] = {}  # UE MIKEY address -> UE
        self.zn_refused = 0  # Zn requests the BSF answered 401 (bad NAF credentials)
        self.ub_exchanges = 0

    # --- taps ---------------------------------------------------------------------------------

    def udp_tap(self, data: bytes, src: Addr, dst: Addr) -> None:
        """Any datagram sent: into the capture."""
        if self.capture is not None:
            self.capture.udp(src, dst, data, time.time())

    def ue_tap(self, data: bytes, src: Addr, dst: Addr) -> None:
        """A datagram a UE sent (to the BM-SC): key management traffic of its profile."""
        h = self.by_addr.get(src)
        if h is not None:
            self.metrics.key_traffic(h.profile, len(data))
        self.udp_tap(data, src, dst)

    def bmsc_tap(self, data: bytes, src: Addr, dst: Addr) -> None:
        """A datagram the BM-SC sent: an MTK message, or key management traffic to a UE."""
        h = self.by_addr.get(dst)
        if h is None or is_mtk_message(data):
            self.metrics.mtk_messages += 1
            self.metrics.mtk_octets += len(data)
        else:
            self.metrics.key_traffic(h.profile, len(data))
        self.udp_tap(data, src, dst)

    def bmsc_http(self, c: Addr, s: Addr, rq: bytes, rs: bytes, t0: float, t1: float) -> None:
        """An HTTP exchange at the BM-SC (only 3GPP-profile UEs use HTTP there)."""
        self.metrics.key_traffic("3gpp", len(rq))
        self.metrics.key_traffic("3gpp", len(rs))
        if self.capture is not None:
            self.capture.http(c, s, rq, rs, t0, t1)

    def bsf_http(self, c: Addr, s: Addr, rq: bytes, rs: bytes, t0: float, t1: float) -> None:
        """An HTTP exchange at the BSF: Ub from a UE, or Zn from the BM-SC."""
        if rq.startswith(b"POST /zn/") and rs.startswith(b"HTTP/1.1 401"):
            self.zn_refused += 1
        elif not rq.startswith(b"POST /zn/"):
            self.ub_exchanges += 1
        if self.capture is not None:
            self.capture.http(c, s, rq, rs, t0, t1)

    # --- UE events ----------------------------------------------------------------------------

    def on_ue_event(self, h: UeHandle, e: Any) -> None:
        """One event of UE ``h``'s key client."""
        try:
            self._ue_event(h, e)
        except Exception as exc:  # a bookkeeping bug must not break the UE's driver
            self.metrics.fail(f"demo bookkeeping error on {h.name}: {type(exc).__name__}: {exc}")

    def _ue_event(self, h: UeHandle, e: Any) -> None:
        c = h.counters
        if isinstance(e, ev.Bootstrapped):
            h.btid = e.btid
            c.bootstrapped = True
            if self.keylog.enabled:
                self._log_user_keys(h)
        elif isinstance(e, ev.BootstrapFailed):
            h.bootstrap_failures.append(e.reason)
        elif isinstance(e, ev.RequestSent):
            if e.want != "bootstrap":
                h.request_at = e.at
        elif isinstance(e, ev.RequestRefused):
            cause = f"{e.cause_name} ({e.cause})"
            h.refused.append((e.at, cause))
            self.metrics.error_cause(h.name, cause)
        elif isinstance(e, ev.RequestGaveUp):
            h.gave_up.append(f"{e.want}: {e.reason}")
        elif isinstance(e, ev.MskInstalled):
            latency = None if h.request_at is None else max(0.0, e.at - h.request_at)
            h.request_at = None
            self.metrics.delivery(DeliverySample(h.profile, latency, e.via))
            c.key_deliveries += 1
            self.progress.key_deliveries += 1
        elif isinstance(e, ev.MtkInstalled):
            c.held_keys = True

    # --- key log ------------------------------------------------------------------------------

    def _log_user_keys(self, h: UeHandle) -> None:
        now = time.time()
        client = h.client
        rec = client.keys.muk(client.idi, now)
        if rec is None:
            return
        naf = client.config.bmsc_fqdn
        with contextlib.suppress(Exception):
            self.keylog.ks_naf(rec.btid, naf, client.bootstrap.naf_key(client.naf_id, now))
        self.keylog.mrk(rec.btid, naf, rec.mrk)
        self.keylog.muk(naf, rec.btid, rec.muk)

    def log_schedule_keys(self, core: BmscCore, service_id: str) -> None:
        """Log the service's current and next MSK and MTK (no effect without a key log)."""
        if not self.keylog.enabled:
            return
        sched = core.scheduler
        svc = sched.service(service_id)
        if svc is None:
            return
        now = time.time()
        for m in (sched.current_msk(svc, now), sched.next_msk(svc, now)):
            if m is not None:
                self.keylog.msk(m.ref.key_domain_id, m.ref.msk_id.value, m.key)
        for t in (sched.current_mtk(svc, now), sched.next_mtk(svc, now)):
            if t is not None:
                self.keylog.mtk(t.msk.msk_id.value, t.mtk_id, t.key, t.salt)

    def on_srtp_key(self, key: SrtpKey, key_changes: int) -> None:
        """The media source switched to ``key`` (its ``key_changes``-th key)."""
        self.metrics.mtk_rotations = max(0, key_changes - 1)
        if self.keylog.enabled:
            self.keylog.srtp(key.mki.encode(), key.master_key, key.master_salt, key.roc)
