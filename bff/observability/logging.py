"""Structured logs of the gateway's own messages (not the access log).

:func:`configure_process_logging` runs once per process at start-up (``bff serve`` and each
worker call it) with ``observability.log_level``: the root logger gets a
:class:`~logging.handlers.QueueHandler`, so a log call formats its line and returns without
touching the output; a :class:`~logging.handlers.QueueListener` thread writes the lines to
standard error. uvicorn's own loggers propagate to it.

JSON lines carry ``time``, ``level``, ``logger``, ``message``, the ``request_id`` and
``trace_id`` of the request being served (when there is one), ``exception`` (the formatted
traceback) and any ``extra={...}`` fields. ``text`` gives classic human lines instead.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from typing import IO, TYPE_CHECKING, Any, Literal

import orjson

from bff.observability.context import current_request

if TYPE_CHECKING:
    from bff.config import ObservabilityConfig

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "configure_process_logging"]

_STANDARD = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    | {"message", "asctime", "taskName", "color_message"}
)


def _request_fields() -> dict[str, str]:
    record = current_request()
    if record is None:
        return {}
    record.resolve_trace()
    out = {}
    if record.request_id:
        out["request_id"] = record.request_id
    if record.trace_id:
        out["trace_id"] = record.trace_id
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_request_fields())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _request_fields()
        if "request_id" in fields:
            line = line.replace(record.name, f"{record.name} [{fields['request_id']}]", 1)
        return line


class _Prepared(logging.handlers.QueueHandler):
    """Formats on the caller's thread (where the request's context is), queues the text."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        line = self.format(record)
        out = logging.makeLogRecord({"msg": line, "levelno": record.levelno, "name": record.name})
        return out


_listener: logging.handlers.QueueListener | None = None


def configure_process_logging(config: ObservabilityConfig) -> logging.handlers.QueueListener:
    """:func:`configure_logging` as ``observability:`` asks: ``log_level``, and text lines when
    the access log is ``text`` (JSON otherwise). Call once per process at start-up."""
    return configure_logging(config.log_level, "text" if config.access_log == "text" else "json")


def configure_logging(
    level: str = "info",
    fmt: Literal["json", "text"] = "json",
    *,
    stream: IO[str] | None = None,
    logger: logging.Logger | None = None,
) -> logging.handlers.QueueListener:
    """Route every log record through one queue to ``stream`` (default standard error) as
    JSON or text lines, at ``level`` and above. Calling it again replaces the previous set-up.
    ``logger`` is the root logger unless given (tests). Returns the listener (stop it to flush
    at exit)."""
    global _listener
    if _listener is not None and logger is None:
        _stop(_listener)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _Prepared(records)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    output = logging.StreamHandler(stream if stream is not None else sys.stderr)
    output.setFormatter(logging.Formatter("%(message)s"))
    root = logger if logger is not None else logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    listener = logging.handlers.QueueListener(records, output)
    listener.start()
    atexit.register(_stop, listener)  # the last lines (shutdown's) must reach the output
    if logger is None:
        _listener = listener
    return listener


def _stop(listener: logging.handlers.QueueListener) -> None:
    if listener._thread is not None:  # still running: write what is queued, then stop
        listener.stop()
