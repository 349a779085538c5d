"""Observability: Prometheus metrics, OpenTelemetry tracing, the access log, readiness.

- :class:`Telemetry` bundles one gateway's :class:`Metrics`, :class:`Tracing`, access log
  (:class:`AccessLogWriter`) and per-route :class:`RollingStats`; ``build_gateway`` builds it
  from ``observability:`` and wires it into the edge layer (``bff.edge.telemetry``), the
  upstream chains (:class:`UpstreamTelemetry`) and the metrics endpoint
  (:class:`MetricsEndpoint`).
- Code deeper in the request reports through the hooks :func:`note_route`,
  :func:`note_operation`, :func:`span`, :func:`loader_batch` and :func:`record_cache`; they
  cost a context-variable read when nothing listens.
- :class:`Readiness` answers ``/readyz``; :func:`configure_logging` sets up JSON logs;
  :func:`prepare_multiprocess_metrics` readies metrics for several workers.

See docs/observability.md.
"""

from bff.observability.access_log import AccessLogWriter, redact_path, redact_query
from bff.observability.context import (
    RequestRecord,
    current_request,
    loader_batch,
    note_operation,
    note_route,
    record_cache,
    span,
)
from bff.observability.endpoint import MetricsEndpoint
from bff.observability.health import Readiness
from bff.observability.logging import configure_logging, configure_process_logging
from bff.observability.metrics import Metrics, OperationNames, auth_failure_reason
from bff.observability.multiprocess import MULTIPROC_ENV, prepare_multiprocess_metrics
from bff.observability.rolling import RollingStats, WindowSummary, target_key
from bff.observability.telemetry import Telemetry
from bff.observability.tracing import Tracing, parse_traceparent
from bff.observability.upstream_stage import UpstreamTelemetry

__all__ = [
    "MULTIPROC_ENV",
    "AccessLogWriter",
    "Metrics",
    "MetricsEndpoint",
    "OperationNames",
    "Readiness",
    "RequestRecord",
    "RollingStats",
    "Telemetry",
    "Tracing",
    "UpstreamTelemetry",
    "WindowSummary",
    "auth_failure_reason",
    "configure_logging",
    "configure_process_logging",
    "current_request",
    "loader_batch",
    "note_operation",
    "note_route",
    "parse_traceparent",
    "prepare_multiprocess_metrics",
    "record_cache",
    "redact_path",
    "redact_query",
    "span",
    "target_key",
]
