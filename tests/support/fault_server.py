"""A small upstream the tests control: echoes, slowness, failures, huge bodies, flapping health.

``FaultApp`` is a pure ASGI app; serve it with ``ThreadedServer(FaultApp("a"))``. Its endpoints:

- ``/echo/...`` (any method): JSON of the request it received: ``method``, ``path``, ``raw_path``,
  ``query`` (raw), ``headers`` (``[[name, value], ...]``), ``body_size`` (counted while
  streaming, never buffered), ``served_by``
- ``/status/{code}``: answers ``code`` with a small JSON body (``?body=`` replaces it);
  ``/status/204``, ``/status/304`` answer without a body
- ``/slow?ms=N``: waits N ms, then echoes
- ``/drip?chunks=N&ms=M&size=S``: N chunks of S bytes, M ms apart (no Content-Length); a
  client that goes away meanwhile is counted in ``app.aborted``
- ``/bytes?n=N`` (``&chunked=1`` for no Content-Length): N bytes streamed in 64 KiB chunks
- ``/reset``: starts a 1 MiB answer, sends 64 KiB of it, then drops the connection
- ``/headers``: an answer with ``Server``, ``X-Powered-By``, hop-by-hop and ordinary headers
- ``/health``: 200 while ``app.healthy``, else 503

Every answer carries ``x-served-by: <name>``. ``app.fail_next(n, status)`` makes the next ``n``
counted requests answer ``status``; ``app.latency_ms`` delays every counted request;
``app.requests`` lists ``(method, path)`` of every request but ``/health``; ``app.health_checks``
counts probes. State is plain attributes: the test thread sets them, the server thread reads them.

``ResetServer`` is a raw TCP listener that resets every connection before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from tests.support.servers import ThreadedServer

__all__ = ["FaultApp", "ResetServer", "fault", "fault_servers"]

Scope = dict[str, Any]

_CHUNK = 64 * 1024
_ZEROS = b"\0" * _CHUNK


class FaultApp:
    """See the module docstring."""

    def __init__(self, name: str = "fault") -> None:
        self.name = name
        self.healthy = True
        self.health_checks = 0
        self.latency_ms = 0.0
        self.aborted = 0
        self.requests: list[tuple[str, str]] = []
        self._failures: list[int] = []
        self._served_by = (b"x-served-by", name.encode())

    # -- controls (called from the test thread) -----------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests (but ``/health``) answer ``status``."""
        self._failures = [status] * n

    def reset(self) -> None:
        """Forget requests and scripted failures; healthy and fast again."""
        self.requests = []
        self._failures = []
        self.healthy = True
        self.health_checks = 0
        self.latency_ms = 0.0
        self.aborted = 0

    def count(self, prefix: str = "/") -> int:
        """Requests received whose path starts with ``prefix``."""
        return sum(1 for _, p in list(self.requests) if p.startswith(prefix))

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/health":
            self.health_checks += 1
            await self._json(send, 200 if self.healthy else 503, {"healthy": self.healthy})
            return
        self.requests.append((scope["method"], path))
        # Decided on arrival: a slow request left over from an earlier test takes no failure.
        failure = self._failures.pop(0) if self._failures else None
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if failure is not None:
            status = failure
            await self._drain(receive)
            await self._json(send, status, {"error": "scripted", "status": status})
            return
        params = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
        if path.startswith("/echo"):
            await self._echo(scope, receive, send)
        elif path.startswith("/status/"):
            await self._status(int(path.rsplit("/", 1)[1]), params, receive, send)
        elif path == "/slow":
            await asyncio.sleep(float(params.get("ms", "100")) / 1000)
            await self._echo(scope, receive, send)
        elif path == "/drip":
            await self._drip(params, receive, send)
        elif path == "/bytes":
            await self._bytes(int(params.get("n", "0")), params.get("chunked") == "1", send)
        elif path == "/reset":
            await self._start(send, 200, [(b"content-length", str(1 << 20).encode())])
            await send({"type": "http.response.body", "body": _ZEROS, "more_body": True})
            raise ConnectionResetError("scripted failure: drop the connection mid-body")
        elif path == "/headers":
            await self._start(
                send,
                200,
                [
                    (b"server", b"fault/1.0"),
                    (b"x-powered-by", b"asgi"),
                    (b"connection", b"x-hop-secret"),
                    (b"x-hop-secret", b"1"),
                    (b"keep-alive", b"timeout=5"),
                    (b"x-upstream", b"kept"),
                    (b"x-internal", b"private"),
                    (b"x-old-name", b"renamed"),
                    (b"content-length", b"2"),
                ],
            )
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await self._json(send, 404, {"error": "no such fault", "path": path})

    async def _start(self, send: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, self._served_by],
            }
        )

    async def _json(self, send: Any, status: int, body: Any) -> None:
        data = orjson.dumps(body)
        await self._start(
            send,
            status,
            [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        )
        await send({"type": "http.response.body", "body": data})

    async def _drain(self, receive: Any) -> int:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return size
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return size

    async def _echo(self, scope: Scope, receive: Any, send: Any) -> None:
        size = await self._drain(receive)
        await self._json(
            send,
            200,
            {
                "method": scope["method"],
                "path": scope["path"],
                "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
                ],
                "body_size": size,
                "served_by": self.name,
            },
        )

    async def _status(self, status: int, params: dict[str, str], receive: Any, send: Any) -> None:
        await self._drain(receive)
        if status in (204, 304):
            await self._start(send, status, [])
            await send({"type": "http.response.body", "body": b""})
            return
        body = params["body"].encode() if "body" in params else orjson.dumps({"status": status})
        await self._start(
            send,
            status,
            [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        )
        await send({"type": "http.response.body", "body": body})

    async def _drip(self, params: dict[str, str], receive: Any, send: Any) -> None:
        chunks, ms = int(params.get("chunks", "5")), float(params.get("ms", "50"))
        size = int(params.get("size", "10"))
        await self._drain(receive)
        gone = asyncio.ensure_future(receive())  # resolves on http.disconnect
        try:
            await self._start(send, 200, [(b"content-type", b"application/octet-stream")])
            for _ in range(chunks):
                await asyncio.sleep(ms / 1000)
                if gone.done():
                    self.aborted += 1
                    return
                await send({"type": "http.response.body", "body": b"x" * size, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()

    async def _bytes(self, n: int, chunked: bool, send: Any) -> None:
        headers = [(b"content-type", b"application/octet-stream")]
        if not chunked:
            headers.append((b"content-length", str(n).encode()))
        await self._start(send, 200, headers)
        async for chunk in _zeros(n):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _zeros(n: int) -> AsyncIterator[bytes]:
    while n > 0:
        chunk = _ZEROS if n >= _CHUNK else _ZEROS[:n]
        n -= len(chunk)
        yield chunk


class ResetServer:
    """A TCP listener that reads a request and resets the connection (RST) without answering."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="reset-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ResetServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            try:
                conn.settimeout(1.0)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                conn.close()

    def __enter__(self) -> ResetServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def fault_servers() -> Iterator[dict[str, ThreadedServer]]:
    """Two fault servers, ``a`` and ``b`` (``servers["a"].app`` is the :class:`FaultApp`)."""
    servers = {name: ThreadedServer(FaultApp(name)).start() for name in ("a", "b")}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def fault(fault_servers: dict[str, ThreadedServer]) -> dict[str, ThreadedServer]:
    """The fault servers, reset for this test."""
    for server in fault_servers.values():
        server.app.reset()
    return fault_servers
