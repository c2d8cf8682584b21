"""Progress display of the demo: phase, UEs holding the current keys, packets decrypted.

On a terminal one line is rewritten in place (carriage return, padded to erase the previous
text) at most every ``tty_interval`` seconds; on anything else (a pipe, a CI log) one plain
line is written every ``line_interval`` seconds and at every phase change, so logs stay short.
Time is passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

__all__ = ["Progress", "ProgressState"]


@dataclass
class ProgressState:
    """What the display shows; the orchestrator updates the fields."""

    phase: str = "starting"
    ues_total: int = 0
    ues_current: int = 0
    srtp_sent: int = 0
    srtp_decrypted: int = 0
    key_deliveries: int = 0


class Progress:
    """Renders :class:`ProgressState` to ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        tty_interval: float = 0.1,
        line_interval: float = 2.0,
        enabled: bool = True,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.tty_interval = tty_interval
        self.line_interval = line_interval
        self.enabled = enabled
        self.state = ProgressState()
        self._last_at: float | None = None
        self._last_phase = ""
        self._width = 0

    def line(self, now: float) -> str:
        """The progress text for ``now`` (seconds since the demo started)."""
        s = self.state
        return (
            f"[{now:6.1f}s] {s.phase}: UEs with current keys {s.ues_current}/{s.ues_total}, "
            f"key deliveries {s.key_deliveries}, SRTP decrypted {s.srtp_decrypted} "
            f"(sent {s.srtp_sent} x UEs)"
        )

    def tick(self, now: float, *, force: bool = False) -> None:
        """Write an update if one is due at ``now`` (always on a phase change or ``force``)."""
        if not self.enabled:
            return
        changed = self.state.phase != self._last_phase
        interval = self.tty_interval if self.tty else self.line_interval
        due = self._last_at is None or now - self._last_at >= interval
        if not (due or changed or force):
            return
        text = self.line(now)
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_at = now
        self._last_phase = self.state.phase

    def message(self, text: str) -> None:
        """Write one full line (an announcement) without breaking the progress line."""
        if not self.enabled:
            return
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last_at = None
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, now: float) -> None:
        """Write the final state and end the rewritten line."""
        if not self.enabled:
            return
        self.tick(now, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
