"""The telemetry edge layer: one record per request, for metrics, the access log and tracing.

It runs right after the request id layer, so it sees every answer, refusals by later layers
included. Per request it opens a :class:`~bff.observability.RequestRecord` (what served the
request, its operation, upstream time, cache outcome, ...), counts the bytes both ways and the
status, and at the end:

- counts the request and its latency (``bff_requests_total``,
  ``bff_request_duration_seconds``), by what served it: ``app``/``route`` and its name, or
  ``health``, ``admin``, ``none``;
- adds it to the rolling windows of its route or app (the admin API's figures);
- writes its access log line;
- ends its SERVER span.

The metrics endpoint itself is passed through untouched: scrapes are not traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import Any

from bff.asgi import ASGIApp, Message, Receive, Scope, Send
from bff.auth.principal import PRINCIPAL_KEY
from bff.edge.request_id import REQUEST_ID_KEY
from bff.observability.access_log import format_json, format_text, redact_path, redact_query
from bff.observability.context import RequestRecord, close_record, open_record
from bff.observability.telemetry import Telemetry

__all__ = ["TelemetryLayer"]

_CLIENT_GONE = 499  # nginx's "client closed request": no response was sent
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


class TelemetryLayer:
    """Pure-ASGI layer recording every HTTP request with ``telemetry``.

    ``targets`` maps exact paths to what they serve, ``(kind, name)``: GraphQL app paths to
    ``("app", name)``, health paths to ``("health", name)``; passthrough requests name their
    route through :func:`~bff.observability.note_route`. Paths under ``admin_prefix`` are
    ``("admin", "")``; ``exempt_paths`` (the metrics endpoint) are not recorded at all.
    ``route_of(scope)`` names the route of a request no route claimed (refused before the
    proxy, by authentication or rate limits): it runs only for those.
    """

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry,
        *,
        targets: Mapping[str, tuple[str, str]] | None = None,
        admin_prefix: str | None = None,
        exempt_paths: Iterable[str] = (),
        route_of: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self._targets: dict[str, tuple[str, str]] = {}
        for path, target in (targets or {}).items():
            bare = path.rstrip("/") or "/"
            self._targets[bare] = self._targets[bare + "/"] = target
        self._admin = admin_prefix.rstrip("/") if admin_prefix else None
        self._admin_below = (self._admin or "") + "/"
        self._exempt = frozenset(exempt_paths)
        self._route_of = route_of
        self._metrics = telemetry.metrics
        self._tracing = telemetry.tracing
        self._rolling = telemetry.rolling
        self._log = telemetry.access_log
        self._format = format_text if telemetry.access_log_format == "text" else format_json
        self._scan_headers = self._log is not None or self._tracing is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self._exempt:
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        target = self._targets.get(path)
        if target is not None:
            record = RequestRecord(self.telemetry, target[0], target[1])
        elif self._admin is not None and (
            path == self._admin or path.startswith(self._admin_below)
        ):
            record = RequestRecord(self.telemetry, "admin")
        else:
            record = RequestRecord(self.telemetry)
        record.request_id = scope.get(REQUEST_ID_KEY)
        length: bytes | None = None
        parsed = None
        if self._scan_headers:  # the log and tracing need them now; metrics alone never
            for name, value in scope["headers"]:
                if name == b"content-length":
                    length = value
                elif name == b"traceparent":
                    record.traceparent = value
                elif name == b"tracestate":
                    record.tracestate = value
            parsed = record.check_traceparent()
        else:
            record.headers = scope["headers"]  # an upstream call may want the trace context
        tracing = self._tracing
        span: Any = None
        span_token: object = None
        if tracing is not None:
            sampled, trace_id = tracing.decide(parsed)
            if sampled:
                span, span_token = tracing.start_request(
                    scope["method"],
                    {"http.request.method": scope["method"], "url.path": path},
                    record.traceparent,
                    record.tracestate,
                )
                record.trace_id = tracing.trace_id(span)
                record.sampled = True
            else:  # no span at all; the upstreams still get the trace, marked not sampled
                record.trace_id = trace_id
                record.traceparent = tracing.unsampled_traceparent(trace_id)
        metrics = self._metrics
        if metrics is not None:
            metrics.in_flight += 1
        # The body's size as declared, when it is; counting what the app reads costs a wrapper
        # around every receive, so only bodies of unknown length (chunked) are counted.
        receive_app: Receive = receive
        if length is not None and length.isdigit():
            record.bytes_in = int(length)
        elif self._log is not None and scope["method"] not in _BODILESS:

            async def receive_counted() -> Message:
                message = await receive()
                body = message.get("body")
                if body:
                    record.bytes_in += len(body)
                return message

            receive_app = receive_counted
        token = open_record(record)

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            else:
                body = message.get("body")
                if body:
                    record.bytes_out += len(body)
            await send(message)

        failed = False
        try:
            await self.app(scope, receive_app, send_observed)
        except BaseException:
            failed = True
            raise
        finally:
            duration = perf_counter() - start
            close_record(token)
            if metrics is not None:
                metrics.in_flight -= 1
            if not record.status:
                record.status = 500 if failed else _CLIENT_GONE
            try:
                self._finish(scope, record, duration)
            finally:
                if span is not None:
                    assert tracing is not None
                    tracing.end_request(
                        span,
                        span_token,
                        f"{scope['method']} {record.kind}:{record.name}",
                        {
                            "http.response.status_code": record.status,
                            "http.route": f"{record.kind}:{record.name}",
                            "bff.request_id": record.request_id or "",
                        },
                        record.status >= 500,
                    )

    def _finish(self, scope: Scope, record: RequestRecord, duration: float) -> None:
        if record.kind == "none" and self._route_of is not None:
            route = self._route_of(scope)
            if route is not None:
                record.kind, record.name = "route", route
        kind, name, status = record.kind, record.name, record.status
        metrics = self._metrics
        if metrics is not None:
            metrics.request_counter(kind, name, scope["method"], status).inc()
            metrics.request_histogram(kind, name).observe(duration)
            if record.operation_label is not None and record.operations == 1:
                metrics.upstream_calls_per_operation(
                    name, record.operation_label, record.upstream_calls
                )
        rolling = self._rolling
        if rolling is not None and (kind == "route" or kind == "app"):
            rolling.record(
                f"{kind}:{name}",
                duration,
                status,
                rate_limited=record.rate_limited,
                cache=record.cache,
            )
        if self._log is not None:
            self._log.write(self._format(self._entry(scope, record, duration)))

    def _entry(self, scope: Scope, record: RequestRecord, duration: float) -> dict[str, Any]:
        principal = scope.get(PRINCIPAL_KEY)
        who = client_ip = None
        if principal is not None:
            client_ip = principal.client_ip
            if principal.kind != "anonymous":
                who = f"{principal.kind}:{principal.subject}"
        if client_ip is None:
            client = scope.get("client")
            client_ip = client[0] if client else None
        kind = record.kind
        entry: dict[str, Any] = {
            "time": time.time(),
            "request_id": record.request_id,
            "trace_id": record.trace_id,
            "method": scope["method"],
            "path": redact_path(scope["path"]),
            "route": record.name if kind == "route" else None,
            "app": record.name if kind == "app" else None,
            "operation": record.operation,
            "status": record.status,
            # Microsecond resolution; int() is cheaper than round().
            "duration_ms": int(duration * 1e6) / 1000,
            "upstream_ms": int(record.upstream_seconds * 1e6) / 1000,
            "upstream_calls": record.upstream_calls,
            "principal": who,
            "client_ip": client_ip,
            "bytes_in": record.bytes_in,
            "bytes_out": record.bytes_out,
            "cache": record.cache,
        }
        query = scope.get("query_string")
        if query:
            entry["query"] = redact_query(query)
        return entry
