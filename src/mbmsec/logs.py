"""JSON logging for the servers (stdlib :mod:`logging`), one object per line.

Core modules log with ``logger.info("event text", extra={...})``; the formatter writes the
standard fields plus every ``extra`` field. Callers never pass key bytes in ``extra``: the
formatter additionally drops any field whose name is a known key name (K, OPc, RES, CK, IK,
Ks, Ks_NAF, ...) as a second line of defence.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO

__all__ = ["REDACTED_FIELDS", "JsonFormatter", "setup_json_logging"]

# Field names that must never reach a log line (compared case-insensitively).
REDACTED_FIELDS = frozenset(
    {
        "k",
        "opc",
        "op",
        "res",
        "xres",
        "ck",
        "ik",
        "ks",
        "ks_naf",
        "ks_ext_naf",
        "ks_int_naf",
        "password",
        "secret",
        "token",
        "msk",
        "mtk",
        "muk",
        "mrk",
        "key",
    }
)

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: ts, level, logger, msg, and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k in _STANDARD or k.startswith("_") or k.lower() in REDACTED_FIELDS:
                continue
            out[k] = v if isinstance(v, str | int | float | bool | None) else str(v)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, separators=(",", ":"))


def setup_json_logging(level: int | str = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send the ``mbmsec`` loggers to ``stream`` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("mbmsec")
    for h in list(root.handlers):
        if getattr(h, "_mbmsec_json", False):
            root.removeHandler(h)
    handler._mbmsec_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
