"""One gateway's telemetry: its metrics, tracing, access log and rolling windows, together.

:meth:`Telemetry.from_config` builds it from ``observability:`` once per process;
``build_gateway`` hands it to the edge layer, the upstream chains and the hooks, and the
gateway's lifespan starts and closes it. Each part is optional: ``metrics.enabled: false``
leaves out the metrics and the rolling windows, ``access_log: off`` the log, no
``tracing.otlp_endpoint`` the tracing. With all three off the edge layer is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from bff.observability.access_log import AccessLogWriter
from bff.observability.context import RequestRecord, current_request
from bff.observability.metrics import SAMPLE_INTERVAL, Metrics
from bff.observability.rolling import RollingStats
from bff.observability.tracing import Tracing
from bff.observability.upstream_stage import stage_factory

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from bff.config import ObservabilityConfig

__all__ = ["Telemetry"]

log = logging.getLogger("bff.observability")


class Telemetry:
    """Metrics (None when disabled), tracing (None when off), the access log writer (None when
    off) and its format, and the per-route rolling windows (None with metrics disabled)."""

    def __init__(
        self,
        *,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        access_log: AccessLogWriter | None = None,
        access_log_format: str = "json",
        rolling: RollingStats | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.access_log = access_log
        self.access_log_format = access_log_format
        self.rolling = rolling
        self._sampler: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls,
        config: ObservabilityConfig,
        *,
        access_log_stream: IO[bytes] | None = None,
        span_exporter: SpanExporter | None = None,
        multiprocess: bool | None = None,
    ) -> Telemetry:
        """The telemetry ``config`` asks for. ``access_log_stream`` (default standard output)
        receives the access log; ``span_exporter`` turns tracing on with that exporter (tests);
        ``multiprocess`` overrides the detection of prometheus_client's multi-process mode."""
        metrics = Metrics(multiprocess=multiprocess) if config.metrics.enabled else None
        writer = None
        if config.access_log != "off":
            on_drop = metrics.access_log_dropped.inc if metrics is not None else None
            writer = AccessLogWriter(access_log_stream, on_drop=on_drop)
        return cls(
            metrics=metrics,
            tracing=Tracing.from_config(config.tracing, exporter=span_exporter),
            access_log=writer,
            access_log_format=config.access_log,
            rolling=RollingStats() if metrics is not None else None,
        )

    @property
    def active(self) -> bool:
        """Whether anything is recorded per request (else the edge layer is left out)."""
        return self.metrics is not None or self.tracing is not None or self.access_log is not None

    # -- wiring -----------------------------------------------------------------------------

    def upstream_stage(self, upstream: str) -> Any:
        """The chain-stage factory of upstream ``upstream`` (None when nothing is recorded)."""
        if self.metrics is None and self.tracing is None:
            return None
        instruments = self.metrics.upstream(upstream) if self.metrics is not None else None
        return stage_factory(instruments, self.tracing)

    def watch(self, upstreams: Mapping[str, Any], rate_limiter: Any = None) -> None:
        """Sample the state of ``upstreams`` (and the rate limiter) into gauges."""
        if self.metrics is None:
            return
        self.metrics.watch_upstreams(upstreams)
        if rate_limiter is not None:
            self.metrics.watch_rate_limiter(rate_limiter)

    # -- events -----------------------------------------------------------------------------

    def operation(self, record: RequestRecord, app: str, name: str | None, kind: str) -> None:
        """A GraphQL operation selected for execution (see ``note_operation``)."""
        shown = name or "anonymous"
        if record.operation is None:
            record.operation = shown
        elif len(record.operation) < 256:  # a batch: every operation, in order
            record.operation += "," + shown
        record.operations += 1
        record.operation_type = kind
        if self.metrics is not None:
            record.operation_label = self.metrics.graphql_operation(app, name, kind)

    def auth_refused(self, error: Exception) -> None:
        """Credentials were refused (the authentication layer's ``on_refused``)."""
        if self.metrics is None:
            return
        scheme = getattr(error, "scheme", None)
        credential = "api_key" if scheme == "ApiKey" else "jwt" if scheme else "any"
        reason = getattr(error, "reason", None) or getattr(error, "code", "other")
        self.metrics.auth_failure(credential, str(reason))

    def rate_limited(self, plan: str | None) -> None:
        """Rate limits refused a request under ``plan`` (the rate limiter's ``on_refused``)."""
        if self.metrics is not None:
            self.metrics.rate_limited(plan)
        record = current_request()
        if record is not None:
            record.rate_limited = True

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start background work (in the running loop): in multi-process mode, sampling."""
        if self.metrics is not None and self.metrics.multiprocess and self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(self._sample_forever())

    async def _sample_forever(self) -> None:
        assert self.metrics is not None
        while True:
            try:
                self.metrics.sample()
            except Exception:
                log.exception("sampling metrics failed")
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def aclose(self) -> None:
        """Stop sampling, write the access log out, flush spans, retire this process's
        gauges."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self.access_log is not None:
            await self.access_log.aclose()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        if self.metrics is not None:
            self.metrics.mark_process_dead()
