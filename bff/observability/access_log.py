"""The access log: one line per request, JSON or text, written off the event loop.

Fields (JSON keys; ``null`` when unknown): ``time`` (UTC, ms), ``request_id``, ``trace_id``,
``method``, ``path``, ``query`` (secrets redacted; absent when empty), ``route`` (passthrough
route id) or ``app`` (GraphQL app), ``operation`` (GraphQL operation name), ``status``,
``duration_ms``, ``upstream_ms`` (upstream calls added up) and ``upstream_calls``,
``principal`` (``user:<sub>`` or ``api_key:<key id>``; null when anonymous), ``client_ip``,
``bytes_in``, ``bytes_out``, ``cache``.

What is never written: request or response bodies, and headers at all (so no
``Authorization``, ``X-API-Key`` or cookies); in the query string, the values of parameters
whose names suggest a secret (``token``, ``key``, ``password``, ...) and any value shaped like a
JWT or a bff API key become ``[redacted]``; a JWT in the path too.

Lines are buffered in memory and handed to one writer thread every :data:`FLUSH_INTERVAL`
seconds (or sooner when the buffer fills), so a slow log pipe never holds a request. If the
output stalls, at most :data:`MAX_PENDING_BYTES` wait; lines past that are dropped and counted
(``bff_access_log_dropped_total``).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any
from urllib.parse import unquote_plus

import orjson

__all__ = [
    "DATA_PARAMS",
    "FLUSH_INTERVAL",
    "MAX_PENDING_BYTES",
    "SECRET_PARAMS",
    "AccessLogWriter",
    "format_json",
    "format_text",
    "redact_path",
    "redact_query",
]

FLUSH_INTERVAL = 0.05
"""Seconds a line may wait in the buffer."""
_FLUSH_BYTES = 256 * 1024
MAX_PENDING_BYTES = 16 * 1024 * 1024
"""Most bytes waiting for the output; lines beyond are dropped."""
_MAX_QUERY = 1024
_MAX_PATH = 2048

#: Query parameters whose values are never logged (compared lower-cased, ``-`` as ``_``).
SECRET_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "key",
        "api_key",
        "apikey",
        "x_api_key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "signature",
        "sig",
        "code",
        "session",
        "sessionid",
        "session_id",
        "jwt",
        "credential",
        "credentials",
    }
)
#: Query parameters that carry request data (GraphQL over GET): never logged either.
DATA_PARAMS = frozenset({"variables", "extensions"})
_SECRET_WORDS = ("token", "secret", "password", "passwd", "apikey", "api_key", "jwt", "session")
_SECRET_VALUE = re.compile(
    r"(?:eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*|bff_[A-Za-z0-9_-]{20,})"
)
_REDACTED = "[redacted]"


def _secret_name(name: str) -> bool:
    key = unquote_plus(name).strip().lower().replace("-", "_")
    return key in SECRET_PARAMS or key in DATA_PARAMS or any(word in key for word in _SECRET_WORDS)


def redact_query(query: bytes) -> str:
    """The query string, safe to log: secret parameters' values and secret-shaped values
    replaced, cut at 1 KB."""
    if not query:
        return ""
    text = query[:_MAX_QUERY].decode("latin-1")
    parts = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        if sep and (_secret_name(name) or _SECRET_VALUE.search(unquote_plus(value))):
            parts.append(f"{name}={_REDACTED}")
        elif not sep and _SECRET_VALUE.search(unquote_plus(name)):
            parts.append(_REDACTED)
        else:
            parts.append(pair)
    out = "&".join(parts)
    return out + "..." if len(query) > _MAX_QUERY else out


def redact_path(path: str) -> str:
    """The path, safe to log: JWT- or key-shaped segments replaced, cut at 2 KB."""
    if "eyJ" in path or "bff_" in path:
        path = _SECRET_VALUE.sub(_REDACTED, path)
    return path if len(path) <= _MAX_PATH else path[:_MAX_PATH] + "..."


_second = -1
_second_text = ""


_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def _timestamp(now: float) -> str:
    # The date part changes once a second: format it once a second.
    global _second, _second_text
    whole = int(now)
    if whole != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = whole
    return _second_text + _MILLIS[int((now - whole) * 1000)]


def format_json(entry: dict[str, Any]) -> bytes:
    """One JSON line (``entry["time"]`` a UNIX time, written as ISO 8601 UTC)."""
    entry["time"] = _timestamp(entry["time"])
    return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)


_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def _safe(text: str) -> str:
    # A decoded path may hold a newline (%0A): escaped, it cannot forge a second line.
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def format_text(entry: dict[str, Any]) -> bytes:
    """One human line: time, request id, method, path, status, duration, then the rest."""
    target = entry.get("route") or entry.get("app")
    kind = "route" if entry.get("route") else "app"
    query = entry.get("query")
    parts = [
        _timestamp(entry["time"]),
        entry["request_id"] or "-",
        _safe(entry["method"]),
        _safe(entry["path"] + (f"?{query}" if query else "")),
        str(entry["status"]),
        f"{entry['duration_ms']}ms",
    ]
    if target:
        parts.append(f"{kind}={_safe(target)}")
    for key in ("operation", "principal", "cache", "trace_id"):
        value = entry.get(key)
        if value:
            parts.append(f"{key}={_safe(str(value))}")
    if entry.get("upstream_calls"):
        parts.append(f"upstream={entry['upstream_ms']}ms/{entry['upstream_calls']}")
    parts.append(f"in={entry['bytes_in']} out={entry['bytes_out']}")
    if entry.get("client_ip"):
        parts.append(f"ip={entry['client_ip']}")
    line = " ".join(parts)
    return line.encode("utf-8", "backslashreplace") + b"\n"


class AccessLogWriter:
    """Buffers lines on the event loop, writes them on one thread of its own.

    ``stream`` is a binary file (default: standard output, as ``sys.stdout`` is when a batch
    of lines starts, so a replaced ``sys.stdout`` is followed). ``on_drop(n)`` hears of lines
    dropped.
    """

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        on_drop: Callable[[int], None] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        self._stream = stream
        self._on_drop = on_drop
        self._interval = flush_interval
        self._max_pending = max_pending
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._target: Any = stream
        self._pending = 0  # bytes handed to the thread, not yet written
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Future[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.dropped = 0

    def write(self, line: bytes) -> None:
        """Queue one line (from the event loop)."""
        size = len(line)
        if self._pending + self._buffered + size > self._max_pending:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(1)
            return
        if not self._buffer and self._stream is None:
            self._target = sys.stdout
        self._buffer.append(line)
        self._buffered += size
        if self._buffered >= _FLUSH_BYTES:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None or not self._buffer:
            return  # the running write schedules the next when it ends
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._pending += len(data)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="bff-access-log")
        loop = asyncio.get_running_loop()
        self._writing = loop.run_in_executor(self._executor, self._write_out, data, self._target)
        self._writing.add_done_callback(lambda _: self._written(len(data)))

    def _written(self, size: int) -> None:
        self._pending -= size
        self._writing = None
        if self._buffer:
            self._flush()

    @staticmethod
    def _write_out(data: bytes, target: Any) -> None:
        try:
            stream = getattr(target, "buffer", target)  # a text stream's bytes underneath
            stream.write(data)
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass  # a closed or missing output: the lines are lost, the gateway goes on

    async def aclose(self) -> None:
        """Write everything buffered, then stop the thread."""
        while self._writing is not None or self._buffer:
            if self._writing is None:
                self._flush()
            writing = self._writing
            if writing is not None:
                await asyncio.shield(writing)
                await asyncio.sleep(0)  # let its done callback run
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
