"""The first stage of every upstream chain: time, count and trace each call.

It sits outside the breaker and retries, so it sees a call as its caller does: one outcome for
a call however many tries it took, ``unavailable`` when the breaker refused it. The time is to
the response's headers (a streamed body is the caller's to read).

With tracing on, the call gets a CLIENT span and the upstream a ``traceparent`` naming it. In a
trace that is not sampled no span is made (every descendant of an unsampled span is unsampled
under the parent-based sampler): the upstream gets the request span's context, marked not
sampled. With tracing off, a caller's own ``traceparent`` (kept by the edge layer) is passed on
unchanged when the call does not carry one already.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Any

from bff.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bff.observability.context import current_request
from bff.observability.tracing import TRACE_HEADERS, traceparent_of

if TYPE_CHECKING:
    import httpx

    from bff.observability.metrics import UpstreamInstruments
    from bff.observability.tracing import Tracing
    from bff.upstream.call import Handler, UpstreamCall

__all__ = ["UpstreamTelemetry"]

_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class UpstreamTelemetry:
    """Chain stage: ``UpstreamTelemetry(instruments, tracing)(upstream, next_handler)`` builds
    the stage of one upstream (the shape ``Upstream._build_chain`` expects)."""

    __slots__ = ("_count", "_latency", "_name", "_next", "_tracing")

    def __init__(
        self,
        instruments: UpstreamInstruments | None,
        tracing: Tracing | None,
        next_handler: Handler | None = None,
    ) -> None:
        self._name = instruments.name if instruments is not None else ""
        self._count = instruments.count if instruments is not None else None
        self._latency = instruments.latency if instruments is not None else None
        self._tracing = tracing
        self._next = next_handler

    async def __call__(self, call: UpstreamCall) -> httpx.Response:
        assert self._next is not None
        record = current_request()
        tracing = self._tracing
        span: Any = None
        if tracing is not None and (
            record.sampled if record is not None else tracing.sampled_root()
        ):
            span = tracing.start_client(
                f"{call.method} {self._name}",
                {
                    "http.request.method": call.method,
                    "bff.upstream": self._name,
                    "url.template": call.endpoint,
                },
            )
            state = span.get_span_context().trace_state
            _set_trace_headers(call, traceparent_of(span), state.to_header() if state else "")
        elif record is not None:
            if record.headers is not None:
                record.resolve_trace()
            traceparent = record.traceparent
            if traceparent is None:
                pass
            elif tracing is not None:  # a trace not sampled: no span, the request's context
                state = record.tracestate.decode("latin-1") if record.tracestate else ""
                _set_trace_headers(call, traceparent.decode("ascii"), state)
            else:
                _pass_on(call, traceparent, record.tracestate)
        start = perf_counter()
        try:
            response = await self._next(call)
        except BaseException as exc:
            self._done(record, start, _outcome(exc), span, None)
            raise
        status = response.status_code
        self._done(record, start, _CLASSES[status // 100] if status < 600 else "5xx", span, status)
        return response

    def _done(self, record: Any, start: float, outcome: str, span: Any, status: int | None) -> None:
        elapsed = perf_counter() - start
        if self._count is not None:
            self._count[outcome].inc()
            self._latency.observe(elapsed)  # type: ignore[union-attr]
        if record is not None:
            record.upstream_seconds += elapsed
            record.upstream_calls += 1
        if span is not None:
            assert self._tracing is not None
            attrs: dict[str, Any] = {"bff.outcome": outcome}
            if status is not None:
                attrs["http.response.status_code"] = status
            self._tracing.end_client(span, attrs, outcome not in ("2xx", "3xx", "4xx"))


def stage_factory(instruments: UpstreamInstruments | None, tracing: Tracing | None) -> Any:
    """The ``(upstream, next_handler) -> stage`` callable an upstream's chain builder takes."""

    def build(upstream: Any, next_handler: Handler) -> UpstreamTelemetry:
        return UpstreamTelemetry(instruments, tracing, next_handler)

    return build


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnavailable):
        return "unavailable"
    if isinstance(exc, UpstreamError):
        return "error"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "error"


def _without_trace_headers(call: UpstreamCall) -> list[Any]:
    return [h for h in call.headers if h[0].lower() not in _TRACE_NAMES]


_TRACE_NAMES = frozenset({*TRACE_HEADERS, *(h.decode() for h in TRACE_HEADERS)})


def _set_trace_headers(call: UpstreamCall, traceparent: str, tracestate: str) -> None:
    """Replace any trace context the call carries with the gateway's."""
    headers = _without_trace_headers(call)
    as_bytes = bool(headers) and isinstance(headers[0][0], bytes)
    if as_bytes:
        headers.append((b"traceparent", traceparent.encode("ascii")))
        if tracestate:
            headers.append((b"tracestate", tracestate.encode("latin-1")))
    else:
        headers.append(("traceparent", traceparent))
        if tracestate:
            headers.append(("tracestate", tracestate))
    call.headers = headers


def _pass_on(call: UpstreamCall, traceparent: bytes, tracestate: bytes | None) -> None:
    """Forward the caller's trace context unless the call already carries one (the proxy
    forwards the caller's headers as they came)."""
    for name, _ in call.headers:
        if name.lower() in _TRACE_NAMES:
            return
    headers: list[Any] = list(call.headers)  # never grow a list the caller may reuse
    call.headers = headers
    if headers and isinstance(headers[0][0], bytes):
        headers.append((b"traceparent", traceparent))
        if tracestate:
            headers.append((b"tracestate", tracestate))
    else:
        headers.append(("traceparent", traceparent.decode("ascii")))
        if tracestate:
            headers.append(("tracestate", tracestate.decode("latin-1")))
