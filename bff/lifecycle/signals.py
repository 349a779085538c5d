"""The signals a served gateway process answers.

- ``SIGHUP``: re-read the configuration file, validate it and apply it without a restart
  (:meth:`bff.gateway.Gateway.reload`); an invalid file is rejected with its problems logged and
  the running configuration kept. ``bff reload`` sends it.
- ``SIGTERM`` / ``SIGINT``: report not ready at once (``/readyz`` answers 503), then uvicorn's own
  handling: stop accepting, let requests in flight finish within ``listen.drain_timeout``, and
  run the lifespan shutdown, which closes the pools.

uvicorn installs its ``SIGTERM``/``SIGINT`` handlers before the application starts; the gateway's
start-up hook wraps them (and installs the ``SIGHUP`` handler), so this works alike in a single
process and in each worker of ``--workers N``. Signals belong to the main thread: a gateway
served from another thread (tests) gets no handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from bff.config import load_config
from bff.errors import ConfigError
from bff.runtime import ReloadResult

if TYPE_CHECKING:
    from bff.gateway import Gateway

__all__ = ["ProcessControl"]

log = logging.getLogger("bff.lifecycle")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ProcessControl:
    """Connects ``gateway`` to its process's signals; ``config_path`` is what ``SIGHUP`` reloads.

    :meth:`attach` registers the start-up and shutdown hooks; the handlers exist only while the
    gateway serves.
    """

    def __init__(self, gateway: Gateway, config_path: str | os.PathLike[str]) -> None:
        self.gateway = gateway
        self.config_path = os.fspath(config_path)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloading: asyncio.Task[ReloadResult] | None = None
        self._again = False
        self._restore: dict[int, Any] = {}

    def attach(self) -> ProcessControl:
        self.gateway.on_started.append(self.install)
        self.gateway.on_stopping.append(self.uninstall)
        return self

    # -- handlers ---------------------------------------------------------------------------

    def install(self) -> None:
        """Install the handlers (from the running loop, in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            log.debug("not in the main thread: no signal handlers")
            return
        loop = self._loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        for sig in _STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                self._restore[sig] = previous
                signal.signal(sig, self._draining(previous))

    def _draining(self, previous: Callable[[int, FrameType | None], Any]) -> Any:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.gateway.begin_drain()
            previous(signum, frame)

        return handler

    def uninstall(self) -> None:
        """Remove the handlers (shutdown has begun: a reload now would be pointless)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for sig, previous in self._restore.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)
        self._restore.clear()
        if self._reloading is not None:
            self._reloading.cancel()

    def _on_hup(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            self._again = True  # one more once this one is done: the file may have changed since
            return
        assert self._loop is not None
        self._reloading = self._loop.create_task(self._reload_loop())

    async def _reload_loop(self) -> ReloadResult:
        result = await self.reload()
        while self._again:
            self._again = False
            result = await self.reload()
        return result

    # -- reloading --------------------------------------------------------------------------

    async def reload(self) -> ReloadResult:
        """Re-read and apply the configuration file (what ``SIGHUP`` does)."""
        log.info("reloading the configuration from %s", self.config_path)
        try:
            config = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            log.error(
                "configuration reload rejected (%s is invalid); the previous configuration "
                "stays:\n  %s",
                self.config_path,
                "\n  ".join(f"{p}: {m}" if p else m for p, m in exc.problems),
            )
            return ReloadResult(False, problems=list(exc.problems))
        return await self.gateway.reload(config)
