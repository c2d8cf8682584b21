"""Strict byte cursor for all wire parsing and building.

Every read past the end raises :class:`~mbmsec.errors.TruncatedError` naming the absolute byte
offset. :meth:`Buffer.restrict` bounds a length-prefixed region that must be consumed exactly,
as dnspython's ``Parser.restrict_to`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import TrailingDataError, TruncatedError


class Buffer:
    """A read cursor over immutable bytes, or a write buffer when created empty."""

    __slots__ = ("_base", "_data", "_end", "_out", "_pos")

    def __init__(self, data: bytes = b"", *, base_offset: int = 0) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)
        self._base = base_offset
        self._out = bytearray()

    # --- reading -----------------------------------------------------------------------------
    @property
    def offset(self) -> int:
        """Absolute offset of the cursor (base offset + position)."""
        return self._base + self._pos

    @property
    def position(self) -> int:
        return self._pos

    @property
    def data(self) -> bytes:
        return self._data

    def remaining(self) -> int:
        """Bytes left before the current end (the innermost restriction)."""
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self._pos + n > self._end:
            raise TruncatedError(
                f"truncated {what}: need {n} bytes, {self._end - self._pos} left", self.offset
            )

    def pull_bytes(self, n: int, what: str = "field") -> bytes:
        self._need(n, what)
        v = self._data[self._pos : self._pos + n]
        self._pos += n
        return v

    def pull_uint8(self, what: str = "uint8") -> int:
        self._need(1, what)
        v = self._data[self._pos]
        self._pos += 1
        return v

    def pull_uint16(self, what: str = "uint16") -> int:
        return int.from_bytes(self.pull_bytes(2, what), "big")

    def pull_uint32(self, what: str = "uint32") -> int:
        return int.from_bytes(self.pull_bytes(4, what), "big")

    def pull_uint64(self, what: str = "uint64") -> int:
        return int.from_bytes(self.pull_bytes(8, what), "big")

    def peek_uint8(self, what: str = "uint8") -> int:
        self._need(1, what)
        return self._data[self._pos]

    def pull_rest(self) -> bytes:
        return self.pull_bytes(self._end - self._pos)

    def seek(self, pos: int) -> None:
        if pos < 0 or pos > self._end:
            raise TruncatedError("seek outside buffer", self._base + pos)
        self._pos = pos

    @contextmanager
    def restrict(self, n: int, what: str = "region") -> Iterator[None]:
        """Bound reads to the next ``n`` bytes; the body must consume them exactly.

        Raises TruncatedError when fewer than ``n`` bytes remain, TrailingDataError when the
        body leaves bytes unread.
        """
        self._need(n, what)
        saved_end = self._end
        self._end = self._pos + n
        try:
            yield
            if self._pos != self._end:
                raise TrailingDataError(
                    f"{self._end - self._pos} unread bytes in {what}", self.offset
                )
        finally:
            self._end = saved_end

    # --- writing -----------------------------------------------------------------------------
    def push_bytes(self, v: bytes) -> None:
        self._out += v

    def push_uint8(self, v: int) -> None:
        self._out += v.to_bytes(1, "big")

    def push_uint16(self, v: int) -> None:
        self._out += v.to_bytes(2, "big")

    def push_uint32(self, v: int) -> None:
        self._out += v.to_bytes(4, "big")

    def push_uint64(self, v: int) -> None:
        self._out += v.to_bytes(8, "big")

    @property
    def written(self) -> int:
        """Number of bytes pushed so far."""
        return len(self._out)

    def getvalue(self) -> bytes:
        """The bytes pushed so far."""
        return bytes(self._out)
