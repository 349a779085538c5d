"""OpenTelemetry tracing: a span per request and per step, W3C trace context in and out.

Tracing is on when ``observability.tracing.otlp_endpoint`` is set (or a test hands in an
exporter). Off, no :class:`Tracing` exists: every hook checks for ``None`` and returns, so no
OpenTelemetry code runs on the request path. The caller's ``traceparent`` still travels to the
upstreams then (copied as it came), so a trace stays connected through a gateway that records
nothing itself.

On, each gateway has its own ``TracerProvider`` (the global one is left alone). Sampling is
parent-based: a caller's decision is kept; a new trace is recorded with probability
``sample_ratio``. The decision is taken before any span exists (:meth:`Tracing.decide`), so a
request that is not sampled creates no span at all, it only passes a ``traceparent`` on (with
the sampled flag off) to keep the trace connected downstream; everything under a sampled request
span is recorded. Spans go to the OTLP/HTTP exporter through a batching processor (a background
thread), so exporting never waits on the event loop.

The span tree of a GraphQL request::

    POST app:web                      (SERVER; the request)
      graphql.parse, graphql.validate (only when the document was not cached yet)
      graphql.execute
        GET users                     (CLIENT; an upstream call; its span id is the
                                       traceparent the upstream receives)
        loader products.by_id
          GET products
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bff.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

    from bff.config import TracingConfig

__all__ = ["TRACE_HEADERS", "Tracing", "parse_traceparent", "traceparent_of"]

_ID64 = 1 << 64
_LOW64 = _ID64 - 1
_random_bits = random.getrandbits

TRACE_HEADERS = (b"traceparent", b"tracestate")

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, int] | None:
    """``(trace id, parent span id, flags)`` of a W3C ``traceparent`` value (hex bytes), or
    None when it is malformed (it is then ignored, as the spec asks)."""
    if len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, int(flags, 16)


def traceparent_of(span: Span) -> str:
    """The ``traceparent`` value naming ``span`` as the parent."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _traces_url(endpoint: str) -> str:
    # A bare collector address gets the OTLP/HTTP traces path.
    return endpoint if urlsplit(endpoint).path not in ("", "/") else endpoint + "/v1/traces"


class Tracing:
    """The tracer of one gateway and the few operations the hooks need.

    Build with :meth:`from_config`; :meth:`shutdown` flushes pending spans (at shutdown).
    """

    def __init__(self, provider: TracerProvider, sample_ratio: float = 1.0) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace.span import TraceState

        self.provider = provider
        self.tracer = provider.get_tracer("bff")
        self.sample_ratio = sample_ratio
        # As OpenTelemetry's TraceIdRatioBased: the low 64 bits of the trace id below a bound.
        self._bound = round(sample_ratio * _ID64)
        self._trace = trace
        self._attach = otel_context.attach
        self._detach = otel_context.detach
        self._server = trace.SpanKind.SERVER
        self._client = trace.SpanKind.CLIENT
        self._error = trace.Status(trace.StatusCode.ERROR)
        self._remote_span = trace.NonRecordingSpan
        self._span_context = trace.SpanContext
        self._flags = trace.TraceFlags
        self._state = TraceState

    @classmethod
    def from_config(
        cls, config: TracingConfig, *, exporter: SpanExporter | None = None
    ) -> Tracing | None:
        """The tracing of ``config`` (None when no endpoint is set and no ``exporter`` given).

        ``exporter`` (tests: ``InMemorySpanExporter``) receives every span as it ends, besides
        the OTLP exporter when an endpoint is set. Raises :class:`ConfigError` when an endpoint
        is set but the OTLP exporter is not installed.
        """
        if config.otlp_endpoint is None and exporter is None:
            return None
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

        # The ratio is applied by decide(), before a request span is started: spans are only
        # started for traces that are recorded, and their children follow them.
        provider = TracerProvider(
            resource=Resource({"service.name": config.service_name}),
            sampler=ParentBased(ALWAYS_ON),
        )
        if config.otlp_endpoint is not None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise ConfigError(
                    [
                        (
                            "observability.tracing.otlp_endpoint",
                            "is set, but the OTLP exporter is not installed: "
                            "pip install 'bff-gateway[otlp]'",
                        )
                    ]
                ) from None
            otlp = OTLPSpanExporter(endpoint=_traces_url(config.otlp_endpoint), timeout=10)
            provider.add_span_processor(BatchSpanProcessor(otlp))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider, config.sample_ratio)

    # -- sampling ---------------------------------------------------------------------------

    def decide(self, parent: tuple[bytes, bytes, int] | None) -> tuple[bool, str]:
        """Whether a request with this parsed caller ``traceparent`` (None: a new trace) is
        recorded, and its trace id (the caller's, or a new one)."""
        if parent is not None:
            return bool(parent[2] & 1), parent[0].decode("ascii")
        trace_id = _random_bits(128)
        return (trace_id & _LOW64) < self._bound, f"{trace_id:032x}"

    @staticmethod
    def unsampled_traceparent(trace_id: str) -> bytes:
        """A ``traceparent`` for the upstreams of a request that is not recorded."""
        return f"00-{trace_id}-{_random_bits(64) or 1:016x}-00".encode("ascii")

    def sampled_root(self) -> bool:
        """Whether a call made outside any request starts a recorded trace."""
        return _random_bits(64) < self._bound

    # -- the request span (the edge layer) --------------------------------------------------

    def start_request(
        self,
        name: str,
        attributes: Mapping[str, Any],
        traceparent: bytes | None,
        tracestate: bytes | None,
    ) -> tuple[Span, object]:
        """Start and make current the SERVER span of a request :meth:`decide` chose to record,
        child of the caller's ``traceparent`` when it sent one; returns the span and the token
        for :meth:`end_request`."""
        trace = self._trace
        parent = None
        if traceparent is not None:
            parsed = parse_traceparent(traceparent)
            if parsed is not None:
                state = None
                if tracestate:
                    state = self._state.from_header([tracestate.decode("latin-1")])
                remote = self._span_context(
                    trace_id=int(parsed[0], 16),
                    span_id=int(parsed[1], 16),
                    is_remote=True,
                    trace_flags=self._flags(parsed[2] & 1),
                    trace_state=state,
                )
                parent = trace.set_span_in_context(self._remote_span(remote))
        span = self.tracer.start_span(
            name, context=parent, kind=self._server, attributes=attributes
        )
        token = self._attach(trace.set_span_in_context(span, parent))
        return span, token

    def end_request(
        self, span: Span, token: object, name: str, attributes: Mapping[str, Any], error: bool
    ) -> None:
        """Name the request span after what served it, add the outcome, end it."""
        self._detach(token)  # type: ignore[arg-type]
        if span.is_recording():
            span.update_name(name)
            span.set_attributes(attributes)
            if error:
                span.set_status(self._error)
        span.end()

    # -- child spans ------------------------------------------------------------------------

    def span(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[Any]:
        """An INTERNAL child span of the current span, current while it lasts."""
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def start_client(self, name: str, attributes: Mapping[str, Any]) -> Span:
        """Start (not make current) the CLIENT span of an upstream call."""
        return self.tracer.start_span(name, kind=self._client, attributes=attributes)

    def end_client(self, span: Span, attributes: Mapping[str, Any], error: bool) -> None:
        if span.is_recording():
            span.set_attributes(attributes)
            if error:
                span.set_status(self._error)
        span.end()

    @staticmethod
    def trace_id(span: Span) -> str:
        """The span's trace id in hex (what the access log shows)."""
        return f"{span.get_span_context().trace_id:032x}"

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters."""
        self.provider.shutdown()
