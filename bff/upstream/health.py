"""Target health: passive (outlier ejection) and active (background probes).

Both only mark targets; the balancer skips what is marked. Passive health counts consecutive
failed tries per target (connect errors, resets, timeouts, 5xx answers) and ejects a target for
``ejection_time`` once the count reaches ``consecutive_failures``, as Envoy's outlier detection
does. Active health probes ``GET path`` on every target each ``interval``; ``unhealthy_threshold``
failed probes in a row mark it down, ``healthy_threshold`` passed probes mark it up again.
Targets start healthy, so a gateway serves at once on start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import httpx

from bff.upstream.target import Target

__all__ = ["HealthChecker", "PassiveHealth"]

log = logging.getLogger("bff.upstream")


class PassiveHealth:
    """Ejects a target after ``consecutive_failures`` failed tries in a row."""

    __slots__ = ("consecutive_failures", "ejection_time", "name")

    def __init__(self, name: str, *, consecutive_failures: int = 5, ejection_time: float = 10.0):
        self.name = name
        self.consecutive_failures = consecutive_failures
        self.ejection_time = ejection_time

    def failure(self, target: Target) -> None:
        """A try on ``target`` failed (success is ``target.failures = 0``, inlined by callers)."""
        target.failures += 1
        if target.failures >= self.consecutive_failures:
            target.failures = 0
            target.ejected_until = time.monotonic() + self.ejection_time
            target.ejections += 1
            log.warning(
                "upstream %s: target %s ejected for %.3gs after %d consecutive failures",
                self.name,
                target.base,
                self.ejection_time,
                self.consecutive_failures,
            )


class HealthChecker:
    """Probes every target of one upstream in a background task (:meth:`start` / :meth:`stop`)."""

    def __init__(
        self,
        name: str,
        targets: Sequence[Target],
        transport: httpx.AsyncBaseTransport,
        *,
        path: str = "/health",
        interval: float = 5.0,
        timeout: float = 1.0,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 2,
    ) -> None:
        self.name = name
        self.targets = list(targets)
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.unhealthy_threshold = unhealthy_threshold
        self.healthy_threshold = healthy_threshold
        self._transport = transport
        self._passes = dict.fromkeys(self.targets, 0)
        self._fails = dict.fromkeys(self.targets, 0)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start probing (in the running event loop); does nothing if already started."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"health-check-{self.name}"
            )

    async def stop(self) -> None:
        """Stop probing and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.probe_all()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def probe_all(self) -> None:
        """Probe every target once and record the results."""
        results = await asyncio.gather(*(self.check(t) for t in self.targets))
        for target, ok in zip(self.targets, results, strict=True):
            self.record(target, ok)

    async def check(self, target: Target) -> bool:
        """One probe: a 2xx answer within the timeout passes."""
        t = self.timeout
        request = httpx.Request(
            "GET",
            target.base + self.path,
            extensions={"timeout": {"connect": t, "read": t, "write": t, "pool": t}},
        )
        try:
            async with asyncio.timeout(t):
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except (httpx.HTTPError, OSError, TimeoutError):
            return False
        return 200 <= response.status_code < 300

    def record(self, target: Target, ok: bool) -> None:
        """Count a probe's result; flip the target's health at a threshold."""
        if ok:
            self._fails[target] = 0
            self._passes[target] += 1
            if not target.healthy and self._passes[target] >= self.healthy_threshold:
                target.healthy = True
                log.warning("upstream %s: target %s is healthy again", self.name, target.base)
        else:
            self._passes[target] = 0
            self._fails[target] += 1
            if target.healthy and self._fails[target] >= self.unhealthy_threshold:
                target.healthy = False
                log.warning(
                    "upstream %s: target %s is unhealthy (%d failed health checks)",
                    self.name,
                    target.base,
                    self._fails[target],
                )
