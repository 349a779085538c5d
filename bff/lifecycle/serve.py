"""``bff serve``: the gateway under uvicorn, in one process or ``--workers N``.

- **Graceful shutdown**: on ``SIGTERM`` the gateway reports not ready, uvicorn stops accepting
  and lets requests in flight finish within ``listen.drain_timeout``, then the lifespan shutdown
  closes the pools; the process exits 0.
- **Hot reload**: ``SIGHUP`` (``bff reload``) re-reads the file in each process
  (:mod:`bff.lifecycle.signals`). With workers, the supervisor validates the file first (so its
  problems are logged once) and passes the signal on to every worker.
- **Workers**: N processes share the listening socket. With ``state.backend: memory`` each would
  keep its own rate-limit counters, caches and persisted queries, so N > 1 is refused unless
  ``--allow-local-state`` says that is intended.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bff.config import load_config
from bff.errors import ConfigError
from bff.lifecycle.pidfile import PidFile
from bff.lifecycle.signals import ProcessControl

if TYPE_CHECKING:
    from bff.config import GatewayConfig
    from bff.gateway import Gateway

__all__ = ["CONFIG_ENV", "ServeError", "check_workers", "serve", "uvicorn_options", "worker_app"]

log = logging.getLogger("bff.lifecycle")

CONFIG_ENV = "BFF_CONFIG"
"""Where worker processes find the configuration file."""


class ServeError(Exception):
    """``bff serve`` refuses to start (one line, for the CLI)."""


def check_workers(config: GatewayConfig, workers: int, allow_local_state: bool) -> None:
    """Refuse several workers over per-process state, unless explicitly allowed."""
    if workers < 1:
        raise ServeError(f"--workers must be at least 1 (got {workers})")
    if workers > 1 and config.state.backend == "memory" and not allow_local_state:
        raise ServeError(
            f"refusing to start {workers} workers with state.backend: memory: rate limits, caches "
            "and persisted queries would be kept per process (set state.backend: redis, or pass "
            "--allow-local-state to accept that)"
        )


def uvicorn_options(config: GatewayConfig, host: str | None, port: int | None) -> dict[str, Any]:
    """The uvicorn settings of a served gateway."""
    return {
        "host": host or config.listen.host,
        "port": port or config.listen.port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,  # client IPs come from our own trusted_proxies handling
        "server_header": False,
        "date_header": True,
        "log_level": config.observability.log_level,
        "log_config": None,  # uvicorn's loggers propagate to bff's (JSON) set-up
        # uvicorn waits this long for requests in flight before cancelling them.
        "timeout_graceful_shutdown": math.ceil(config.listen.drain_timeout),
    }


def _served(gateway: Gateway, config_path: str) -> Gateway:
    ProcessControl(gateway, config_path).attach()
    return gateway


def worker_app() -> Gateway:
    """ASGI factory of a worker process: the gateway of ``$BFF_CONFIG``, with its signals."""
    from bff.gateway import build_gateway
    from bff.observability import configure_process_logging

    path = os.environ[CONFIG_ENV]
    config = load_config(path)
    configure_process_logging(config.observability)
    return _served(build_gateway(config), path)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; ending
    # with SystemExit lets the pidfile go and the exit status say "stopped as asked".
    raise SystemExit(0)


def serve(
    config_path: str | os.PathLike[str],
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    allow_local_state: bool = False,
    pidfile: str | os.PathLike[str] | None = None,
) -> int:
    """Run the gateway until stopped; the exit status. Raises :class:`ConfigError` for an
    invalid file and :class:`ServeError` for a refusal."""
    import uvicorn

    path = str(Path(config_path).resolve())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the gateway can reload
    signal.signal(signal.SIGTERM, _exit_quietly)
    config = load_config(path)
    check_workers(config, workers, allow_local_state)
    from bff.observability import configure_process_logging

    configure_process_logging(config.observability)
    options = uvicorn_options(config, host, port)
    with PidFile(pidfile) if pidfile else _NoPidFile():
        if workers > 1:
            from bff.observability import prepare_multiprocess_metrics

            prepare_multiprocess_metrics()
            os.environ[CONFIG_ENV] = path
            uv_config = uvicorn.Config(
                "bff.lifecycle.serve:worker_app", factory=True, workers=workers, **options
            )
            _supervisor(uv_config, path).run()
        else:
            from bff.gateway import build_gateway

            app = _served(build_gateway(config), path)
            server = uvicorn.Server(uvicorn.Config(app, **options))
            server.run()
            if not server.started:
                return 1
    return 0


class _NoPidFile:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _supervisor(config: Any, config_path: str) -> Any:
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's worker supervisor, with SIGHUP meaning "reload", not "restart"."""

        def handle_hup(self) -> None:
            try:
                load_config(config_path)
            except ConfigError as exc:
                log.error(
                    "configuration reload rejected (%s is invalid); the workers keep the "
                    "previous configuration:\n  %s",
                    config_path,
                    "\n  ".join(f"{p}: {m}" if p else m for p, m in exc.problems),
                )
                return
            signalled = 0
            for process in self.processes:
                # A worker still starting reads the new file anyway, and would die of a
                # SIGHUP that comes before its handler is in place.
                if process.pid is None or not process.is_ready(timeout=1):
                    continue
                try:
                    os.kill(process.pid, signal.SIGHUP)
                except ProcessLookupError:
                    continue
                signalled += 1
            log.info("reloading the configuration in %d worker(s)", signalled)

    return Supervisor(config, sockets=[config.bind_socket()])
