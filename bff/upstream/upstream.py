"""One upstream service: its targets, its pooled transport and its chain of stages.

The chain is assembled as a plain list in :func:`Upstream._build_chain` (as Starlette's
``build_middleware_stack`` and lura's ``newStack`` do): each stage is a small callable that wraps
the next one. Resolvers (through ``clients/``) and the passthrough proxy call the same chain, so
what protects an upstream protects it from both.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from bff.errors import BadRequest, NotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.balancer import make_balancer
from bff.upstream.breaker import BreakerStage, CircuitBreaker
from bff.upstream.call import Handler, UpstreamCall
from bff.upstream.deadline import DeadlineExceeded, remaining_budget
from bff.upstream.health import HealthChecker, PassiveHealth
from bff.upstream.recorder import RecordedCall, is_recording, record
from bff.upstream.retry import RetryBudget, RetryStage
from bff.upstream.target import Target
from bff.upstream.transport import TransportKind, make_transport

if TYPE_CHECKING:
    from bff.config import BreakerConfig, HealthCheckConfig, PassiveHealthConfig, RetryConfig

__all__ = ["Target", "Upstream"]

# A path made only of these characters is sent as it is; anything else is percent-encoded first.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_PATH_SAFE = "/%!$&'()*+,;=:@~"


class Upstream:
    """A configured upstream service.

    Build one per upstream at start-up; call :meth:`aclose` at shutdown. ``request`` returns a
    fully read ``httpx.Response`` whatever its status; ``stream`` yields one whose body is still
    to be read; ``get_json`` is the convenience the typed clients use.

    Resilience is optional and configured per upstream: ``balance`` (round_robin,
    least_requests, ip_hash, weighted), ``retries``, ``breaker``, ``passive_health`` and
    ``health_check`` (the config models of the same names; ``None`` or disabled: no stage).
    """

    def __init__(
        self,
        name: str,
        targets: Sequence[tuple[str, int]],
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        pool_timeout: float = 1.0,
        max_connections: int = 100,
        max_keepalive_connections: int = 100,
        keepalive_expiry: float = 30.0,
        transport: TransportKind = "native",
        balance: str = "round_robin",
        retries: RetryConfig | None = None,
        breaker: BreakerConfig | None = None,
        passive_health: PassiveHealthConfig | None = None,
        health_check: HealthCheckConfig | None = None,
        observe: Callable[[Upstream, Handler], Handler] | None = None,
    ) -> None:
        if not targets:
            raise ValueError(f"upstream {name!r} has no targets")
        if not any(weight > 0 for _, weight in targets):
            raise ValueError(f"upstream {name!r} needs a target with a weight above 0")
        self.name = name
        self.targets = [Target(url, weight) for url, weight in targets]
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.pool_timeout = pool_timeout
        self.transport_kind = transport
        self._transport = make_transport(
            transport,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
        self.balance = balance
        self._balancer = make_balancer(balance, self.targets)
        self._count_streams = balance == "least_requests"
        #: The transport's own buffered and streamed paths (``AiohttpTransport.fetch`` and
        #: ``.open``), if it has them.
        self._fetch = getattr(self._transport, "fetch", None)
        self._open = getattr(self._transport, "open", None)
        self._timeouts = self._timeout_extension(connect_timeout, read_timeout)

        self.retry_attempts = retries.attempts if retries is not None else 0
        self.retry_backoff = retries.backoff if retries is not None else 0.0
        self.retry_max_backoff = retries.max_backoff if retries is not None else 0.0
        self.retry_budget: RetryBudget | None = None
        if retries is not None and retries.attempts > 0:
            self.retry_budget = RetryBudget(
                retries.budget_ratio, min_retries=retries.budget_min_retries
            )

        #: The circuit breaker (``None`` when disabled); read ``breaker.state``.
        self.breaker: CircuitBreaker | None = None
        if breaker is not None and breaker.enabled:
            self.breaker = CircuitBreaker(
                name,
                failure_threshold=breaker.failure_threshold,
                recovery_timeout=breaker.recovery_timeout,
                success_threshold=breaker.success_threshold,
                half_open_probes=breaker.half_open_probes,
            )
        self.passive_health: PassiveHealth | None = None
        if passive_health is not None and passive_health.enabled:
            self.passive_health = PassiveHealth(
                name,
                consecutive_failures=passive_health.consecutive_failures,
                ejection_time=passive_health.ejection_time,
            )
        self.health_checker: HealthChecker | None = None
        if health_check is not None:
            self.health_checker = HealthChecker(
                name,
                self.targets,
                self._transport,
                path=health_check.path,
                interval=health_check.interval,
                timeout=health_check.effective_timeout,
                unhealthy_threshold=health_check.unhealthy_threshold,
                healthy_threshold=health_check.healthy_threshold,
            )
        #: The telemetry stage's factory (``bff.observability``), outermost in the chain.
        self.observe = observe
        self._handler: Handler = self._build_chain()

    # -- the chain -------------------------------------------------------------------------

    def _build_chain(self) -> Handler:
        # Outermost first, as a call meets them; each stage wraps the next. A stage with
        # nothing to do is left out rather than made to check on every call.
        stages: list[Any] = [_Recorder]
        if self.observe is not None:
            stages.insert(0, self.observe)  # sees a call as its caller does: retries included
        if self.breaker is not None:
            stages.append(BreakerStage)
        if self.retry_budget is not None:
            stages.append(RetryStage)
        handler: Handler = self._send
        for stage in reversed(stages):
            handler = stage(self, handler)
        return handler

    def stage(self, kind: type[Any]) -> Any:
        """The chain's stage of class ``kind`` (``None`` if absent); for tests and tuning."""
        handler: Any = self._handler
        while handler is not None and not isinstance(handler, kind):
            handler = getattr(handler, "_next", None)
        return handler

    def pick_target(self, call: UpstreamCall) -> Target | None:
        """The target for this try: available, and not the previous try's when others are."""
        return self._balancer.pick(call.client_ip, call.target)

    def _timeout_extension(self, connect: float, read: float) -> dict[str, float]:
        return {
            "connect": min(connect, read),
            "read": read,
            "write": min(self.write_timeout, read),
            "pool": min(self.pool_timeout, read),
        }

    async def _send(self, call: UpstreamCall) -> httpx.Response:
        """The last stage: choose a target, apply the budget, send, classify the outcome."""
        target = self._balancer.pick(call.client_ip, call.target)
        if target is None:
            raise UpstreamUnavailable(
                "no healthy upstream target", upstream=self.name, retry_after=self._retry_after()
            )
        call.target = target
        timeouts = self._timeouts
        budget = remaining_budget()
        cut_short = False
        if budget is not None or call.timeout is not None or call.connect_timeout is not None:
            read = self.read_timeout if call.timeout is None else call.timeout
            if budget is not None:
                if budget <= 0:
                    raise DeadlineExceeded(upstream=self.name)
                if budget < read:
                    read = budget
                    cut_short = True
            connect = self.connect_timeout if call.connect_timeout is None else call.connect_timeout
            timeouts = self._timeout_extension(connect, read)
        path = call.path
        if not _PLAIN_PATH.fullmatch(path):
            path = quote(path, safe=_PATH_SAFE)
        raw_target = (target.base_path + path).encode("ascii")
        if call.query:
            raw_target += b"?" + call.query
        # The transport's own paths (no httpx request/response models to build) serve a
        # buffered call whose body is in memory, and any streamed call; httpx's generic
        # path serves the rest (and transports without them).
        content = call.content
        fast = self._open if call.stream else self._fetch
        request: httpx.Request | None = None
        if fast is None or not (call.stream or content is None or type(content) is bytes):
            fast = None
            request = httpx.Request(
                call.method,
                target.url,
                headers=call.headers,
                content=content,
                # httpcore's request-target override: the path and query reach the wire byte
                # for byte, never re-quoted by httpx's URL parser (the aiohttp transport
                # honours it too).
                extensions={"timeout": timeouts, "target": raw_target},
            )
        target.active += 1
        counted = True
        try:
            if fast is not None:
                response = await fast(
                    call.method, target.origin, raw_target, call.headers, content, timeouts
                )
            else:
                assert request is not None
                response = await self._transport.handle_async_request(request)
                response.request = request
                if not call.stream:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            if call.stream and self._count_streams:
                response.stream = _CountedStream(response.stream, target)
                counted = False
        except httpx.PoolTimeout as exc:
            # Local saturation, not the upstream's fault: no health or breaker penalty.
            raise UpstreamUnavailable(
                "connection pool exhausted", upstream=self.name, retry_after=1.0
            ) from exc
        except httpx.TimeoutException as exc:
            if call.body_error is not None:
                raise call.body_error from exc
            if cut_short:  # the request's budget ran out, not the upstream's own timeout
                raise DeadlineExceeded(upstream=self.name) from exc
            self._failed(target)
            raise UpstreamTimeout(upstream=self.name) from exc
        except httpx.LocalProtocolError as exc:
            if call.body_error is not None:
                raise call.body_error from exc
            # Refused before anything was sent (a header with CR/LF, a bad target): the
            # request's fault, not the upstream's, so no health or breaker penalty.
            raise BadRequest(f"the request cannot be sent upstream: {exc}") from exc
        except httpx.TransportError as exc:
            if call.body_error is not None:
                raise call.body_error from exc
            self._failed(target)
            raise UpstreamError(upstream=self.name) from exc
        except Exception as exc:
            if call.body_error is not None:
                raise call.body_error from exc
            raise
        finally:
            if counted:
                target.active -= 1
        if response.status_code >= 500:
            self._failed(target)
        elif target.failures:
            target.failures = 0
        return response

    def _failed(self, target: Target) -> None:
        if self.passive_health is not None:
            self.passive_health.failure(target)

    def _retry_after(self) -> float:
        """When a target may be back: the nearest end of an ejection, else a health interval."""
        now = time.monotonic()
        ends = [t.ejected_until - now for t in self.targets if t.ejected_until > now]
        if ends:
            return min(ends)
        if self.health_checker is not None:
            return self.health_checker.interval
        return 1.0

    # -- the API used by clients and the proxy ---------------------------------------------

    async def send(self, call: UpstreamCall) -> httpx.Response:
        """Run ``call`` through the chain."""
        return await self._handler(call)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        content: bytes | None = None,
        json: Any = None,
        template: str = "",
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request and read the whole response, whatever its status.

        Raises :class:`UpstreamTimeout` or :class:`UpstreamError` when no response arrives.
        """
        hdrs = list(headers or ())
        if json is not None:
            content = orjson.dumps(json)
            hdrs.append(("content-type", "application/json"))
        call = UpstreamCall(
            method=method,
            path=path,
            query=urlencode(params, safe=",").encode() if params else b"",
            headers=hdrs,
            content=content,
            timeout=timeout,
            template=template,
        )
        return await self._handler(call)

    @asynccontextmanager
    async def stream(self, call: UpstreamCall) -> AsyncIterator[httpx.Response]:
        """Send ``call`` and yield the response with its body unread; closes it afterwards."""
        call.stream = True
        response = await self._handler(call)
        try:
            yield response
        finally:
            await response.aclose()

    async def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        template: str = "",
    ) -> Any:
        """GET ``path`` and decode its JSON body.

        404 raises :class:`NotFound`; any other non-2xx status or an undecodable body raises
        :class:`UpstreamError` (the caller asked for something the upstream could not give).
        """
        response = await self.request("GET", path, params=params, template=template)
        return self.decode(response)

    def decode(self, response: httpx.Response) -> Any:
        """The JSON body of a 2xx response, or the typed error its status means."""
        status = response.status_code
        if status == 404:
            raise NotFound()
        if not 200 <= status < 300:
            raise UpstreamError(upstream=self.name, status=status)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(upstream=self.name, status=status) from exc

    # -- lifecycle and state ----------------------------------------------------------------

    def start(self) -> None:
        """Start background work (active health checks), in the running event loop."""
        if self.health_checker is not None:
            self.health_checker.start()

    def describe(self) -> dict[str, Any]:
        """Targets, breaker, retry budget and health settings, for the admin API and metrics."""
        hc = self.health_checker
        ph = self.passive_health
        return {
            "name": self.name,
            "balance": self.balance,
            "targets": [t.describe() for t in self.targets],
            "breaker": self.breaker.describe() if self.breaker is not None else None,
            "retries": (
                {"attempts": self.retry_attempts, "budget": self.retry_budget.describe()}
                if self.retry_budget is not None
                else None
            ),
            "passive_health": (
                {"consecutive_failures": ph.consecutive_failures, "ejection_time": ph.ejection_time}
                if ph is not None
                else None
            ),
            "health_check": (
                {"path": hc.path, "interval": hc.interval, "running": hc.running}
                if hc is not None
                else None
            ),
        }

    async def aclose(self) -> None:
        """Stop health checks and close the connection pool."""
        if self.health_checker is not None:
            await self.health_checker.stop()
        await self._transport.aclose()


class _CountedStream(httpx.AsyncByteStream):
    """A streamed body that keeps its target's in-flight count until it is closed."""

    __slots__ = ("_stream", "_target")

    def __init__(self, stream: httpx.AsyncByteStream, target: Target) -> None:
        self._stream: httpx.AsyncByteStream | None = stream
        self._target = target

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert self._stream is not None
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._target.active -= 1
            await stream.aclose()


class _Recorder:
    """First stage: report the call to any open ``upstream_calls()`` block."""

    __slots__ = ("_next", "_upstream")

    def __init__(self, upstream: Upstream, next_handler: Handler) -> None:
        self._upstream = upstream
        self._next = next_handler

    async def __call__(self, call: UpstreamCall) -> httpx.Response:
        if is_recording():
            record(RecordedCall(self._upstream.name, call.method, call.endpoint, call.path))
        return await self._next(call)
