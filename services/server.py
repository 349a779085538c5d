"""Running the sample services: one in a background thread (tests), or all in the foreground.

Both use uvicorn with httptools (and uvloop when installed), sockets bound here rather than by
uvicorn so that port 0 works, a stopped server can come back on the same port, and several
processes can share a port through ``SO_REUSEPORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

import uvicorn

from services.app import SERVICE_NAMES, ServiceApp, create_app

__all__ = ["ServiceServer", "run_all"]

try:
    import uvloop

    _LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    _LOOP_NAME = "uvloop"
except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
    _LOOP_FACTORY = asyncio.new_event_loop
    _LOOP_NAME = "asyncio"

# Longer than any client pool's idle expiry (httpx 5 s, aiohttp 15 s): if the server closed idle
# connections first, clients would now and then reuse a connection being closed and see errors
# that have nothing to do with the gateway under test.
_KEEP_ALIVE_S = 75
# In-flight requests (say, under injected latency) get this long to finish when a server stops.
_GRACEFUL_SHUTDOWN_S = 1
_BACKLOG = 2048


def _config(app: ServiceApp, *, in_process: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop=_LOOP_NAME,
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_level="warning",
        # Embedded in a test process, leave its logging configuration alone.
        log_config=None if in_process else uvicorn.config.LOGGING_CONFIG,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=_KEEP_ALIVE_S,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        backlog=_BACKLOG,
    )


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a restarted server rebind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        # Listening at once means connections queue up even before uvicorn takes the socket over.
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner, so that several share one loop, and
    that can be woken up to exit at once rather than at its next 100 ms tick (tests stop and
    start servers often)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def exit_soon(self) -> None:
        """Ask to exit; callable from any thread."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(wake.set)


class ServiceServer:
    """One sample service served by uvicorn on its own event loop in a background thread.

    >>> with ServiceServer("users") as srv:   # doctest: +SKIP
    ...     httpx.get(srv.url + "/users/1").json()

    ``port=0`` picks a free port at the first :meth:`start`; later starts reuse it, so a test can
    :meth:`stop` a service and :meth:`restart` it where clients expect it. The app (with its
    counters and created orders) survives restarts; pass ``app`` to serve one built elsewhere.
    """

    def __init__(
        self,
        name: str,
        *,
        latency_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        app: ServiceApp | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.app: ServiceApp = app if app is not None else create_app(name, latency_ms=latency_ms)
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ServiceServer {self.name} {_url(self.host, self._port)} {state}>"

    @property
    def port(self) -> int:
        """The bound port (0 until the first :meth:`start` when created with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._port == 0:
            raise RuntimeError(f"{self.name} has no port yet: call start() first")
        return _url(self.host, self._port)

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def latency_ms(self) -> float:
        """Injected latency of every counted request; settable while running."""
        return self.app.latency_ms

    @latency_ms.setter
    def latency_ms(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.app.latency_ms = float(ms)

    def start(self, timeout: float = 10.0) -> ServiceServer:
        """Serve in a background thread; return once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self!r} is already started")
        sock = _bind(self.host, self._port)
        self._port = sock.getsockname()[1]
        server = _Server(_config(self.app, in_process=True))
        self._error = None
        thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"service-{self.name}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                self._server = self._thread = None
                raise RuntimeError(f"{self.name} failed to start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not start within {timeout} s")
            time.sleep(0.002)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close the port; idempotent. In-flight requests get about a second."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.exit_soon()
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    def restart(self, timeout: float = 10.0) -> ServiceServer:
        """Stop if running, then start again on the same port with the same app."""
        self.stop(timeout)
        return self.start(timeout)

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, server: _Server, sock: socket.socket) -> None:
        try:
            with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
                runner.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failure
            self._error = exc
        finally:
            sock.close()


def _select(only: Iterable[str] | str | None) -> list[str]:
    if only is None:
        return list(SERVICE_NAMES)
    names = [n.strip() for n in only.split(",")] if isinstance(only, str) else list(only)
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown services {unknown}; choose from {', '.join(SERVICE_NAMES)}")
    # Port order, whatever the order asked for.
    return [n for n in SERVICE_NAMES if n in names]


async def _serve_many(
    host: str,
    ports: dict[str, int],
    latency_ms: float,
    reuse_port: bool,
    on_ready: Callable[[], None],
) -> None:
    sockets: dict[str, socket.socket] = {}
    try:
        for name, port in ports.items():
            sockets[name] = _bind(host, port, reuse_port=reuse_port)
    except OSError:
        for sock in sockets.values():
            sock.close()
        raise
    servers = [
        _Server(_config(create_app(name, latency_ms=latency_ms), in_process=False))
        for name in sockets
    ]

    def exit_(sig: signal.Signals) -> None:
        for server in servers:
            # A second Ctrl-C skips waiting for in-flight requests.
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True
            server.exit_soon()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, exit_, sig)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets.values(), strict=True)
    ]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.005)
    else:
        on_ready()
    await asyncio.gather(*tasks)


def _worker(
    host: str, ports: dict[str, int], latency_ms: float, events: multiprocessing.Queue[Any]
) -> None:
    def ready() -> None:
        events.put(("ready", os.getpid()))

    try:
        with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
            runner.run(_serve_many(host, ports, latency_ms, True, ready))
    except BaseException as exc:
        events.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _announce(urls: dict[str, str]) -> None:
    width = max(map(len, urls))
    for name, url in urls.items():
        print(f"{name:<{width}}  {url}", flush=True)


def run_all(
    host: str = "127.0.0.1",
    port_base: int = 9101,
    latency_ms: float = 0.0,
    only: Iterable[str] | str | None = None,
    processes: int = 1,
    *,
    on_ready: Callable[[dict[str, str]], None] | None = None,
) -> None:
    """Serve the sample services in the foreground until SIGINT (Ctrl-C) or SIGTERM.

    Service ``n`` of :data:`SERVICE_NAMES` listens on ``port_base + n`` (users, orders, products,
    reviews), whether or not ``only`` (names, or a comma-separated string) leaves some out.
    With ``processes > 1``, that many worker processes each serve every selected service, and
    the kernel spreads each port's connections over them (``SO_REUSEPORT``); counters and created
    orders are then per process.

    ``on_ready`` gets ``{name: url}`` once every service accepts connections; by default the URLs
    are printed. Raises ``OSError`` when a port is taken and ``RuntimeError`` when a worker fails.
    """
    names = _select(only)
    if processes < 1:
        raise ValueError("processes must be >= 1")
    if not math.isfinite(latency_ms) or latency_ms < 0:
        raise ValueError("latency_ms must be a finite number >= 0")
    ports = {name: port_base + SERVICE_NAMES.index(name) for name in names}
    urls = {name: _url(host, port) for name, port in ports.items()}
    announce = on_ready or _announce

    if processes == 1:
        with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
            runner.run(_serve_many(host, ports, latency_ms, False, lambda: announce(urls)))
        return
    _run_workers(host, ports, latency_ms, processes, lambda: announce(urls))


def _run_workers(
    host: str,
    ports: dict[str, int],
    latency_ms: float,
    processes: int,
    on_ready: Callable[[], None],
) -> None:
    # spawn, not fork: a fresh interpreter per worker, whatever state the parent holds.
    ctx = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue[Any] = ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker,
            args=(host, ports, latency_ms, events),
            name=f"services-worker-{n}",
            daemon=True,
        )
        for n in range(processes)
    ]
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for worker in workers:
            worker.start()
        ready = 0
        while ready < processes and not stopping.is_set():
            try:
                kind, detail = events.get(timeout=0.2)
            except queue.Empty:
                if any(not w.is_alive() for w in workers):
                    raise RuntimeError("a services worker exited during startup") from None
                continue
            if kind == "error":
                raise RuntimeError(f"a services worker failed: {detail}")
            ready += 1
        if not stopping.is_set():
            on_ready()
        while not stopping.wait(0.5):
            if any(not w.is_alive() for w in workers):
                print("services: a worker exited; stopping the others", file=sys.stderr)
                break
    finally:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(_GRACEFUL_SHUTDOWN_S + 5)
            if worker.is_alive():
                worker.kill()
                worker.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
