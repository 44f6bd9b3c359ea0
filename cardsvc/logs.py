"""Structured JSON logs carrying the request id. Nothing personal is ever passed to a logger: log ids and codes,
never names, ID numbers, birth dates or phone numbers."""

from __future__ import annotations

import json
import logging
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

    def formatException(self, ei: Any) -> str:
        """The traceback, except that a database error's message is withheld: PostgreSQL puts the failing row's
        values in it ("Failing row contains (…)"), and statement parameters may be names or phone numbers."""
        _type, exc, tb = ei
        if isinstance(exc, DBAPIError):
            frames = "".join(traceback.format_tb(tb))
            orig = exc.orig
            return (f"Traceback (most recent call last):\n{frames}{type(exc).__name__}: {type(orig).__name__} "
                    f"(sqlstate {getattr(orig, 'sqlstate', None) or '?'}); message withheld, it may hold personal data")
        return super().formatException(ei)


def configure_logging(level: str = "INFO", *, json_format: bool = True) -> None:
    """Send the service's and uvicorn's logs to stderr, as JSON lines unless asked for plain text."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log replaces uvicorn's: it has the request id and no query strings.
    logging.getLogger("uvicorn.access").disabled = True
