"""Prometheus metrics of one gateway process, and their text exposition.

Every family lives in a registry of its own (tests build many gateways in one process). Label
values are bounded: apps, routes, upstreams, plans and loaders come from the configuration;
methods outside the standard ones count as ``OTHER``; GraphQL operation names are the first
:attr:`OperationNames.limit` distinct names an app sees (plus any registered, such as persisted
operations), then ``other``; authentication failure reasons are folded into a fixed set.

The request path never calls ``.labels()`` nor touches a prometheus_client value: it counts
into stand-ins (:mod:`bff.observability.instruments`) looked up in plain dictionaries filled on
first use (or at start-up for upstreams), and :meth:`Metrics.sample` publishes what they
counted before each exposition.

State that is not an event (breaker states, target health, requests in flight, the rate
limiter's Redis fallback) is sampled: before each exposition and, when several worker processes
share a ``PROMETHEUS_MULTIPROC_DIR``, every :data:`SAMPLE_INTERVAL` seconds by each worker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import choose_encoder

from bff.observability.instruments import DeferredCounter, DeferredHistogram

__all__ = [
    "AUTH_FAILURE_REASONS",
    "REQUEST_BUCKETS",
    "SAMPLE_INTERVAL",
    "Metrics",
    "OperationNames",
    "UpstreamInstruments",
    "auth_failure_reason",
    "is_multiprocess",
    "status_class",
]

#: Seconds between two samples of state gauges in multi-process mode.
SAMPLE_INTERVAL = 2.0

#: Gateway request latency buckets (seconds): the gateway's own floor is well under 1 ms.
REQUEST_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_BATCH_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_UPSTREAM_PER_OPERATION_BUCKETS: tuple[float, ...] = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    8,
    10,
    15,
    20,
    30,
    50,
    100,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")
_BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

#: Upstream call outcomes: a status class, or what prevented an answer.
UPSTREAM_OUTCOMES = (
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "timeout",
    "error",
    "unavailable",
    "cancelled",
)

#: Values of the ``reason`` label of ``bff_auth_failures_total``.
AUTH_FAILURE_REASONS = (
    "expired",
    "revoked",
    "bad_signature",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "algorithm",
    "unknown_signing_key",
    "unknown_key",
    "wrong_secret",
    "ip_not_allowed",
    "malformed",
    "conflicting_credentials",
    "not_enabled",
    "unavailable",
    "other",
)
# First match wins: (words in the lower-cased reason, label).
_REASON_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("expired",), "expired"),
    (("revoked",), "revoked"),
    (("signature",), "bad_signature"),
    (("audience",), "wrong_audience"),
    (("issuer",), "wrong_issuer"),
    (("missing claim",), "missing_claim"),
    (("algorithm",), "algorithm"),
    (
        ("well-formed", "malformed", "not shaped", "longer than", "not a bearer", "not a number"),
        "malformed",
    ),
    (("not a string", "unusable"), "malformed"),
    (("kid", "signing key"), "unknown_signing_key"),
    (("unknown key",), "unknown_key"),
    (("wrong secret",), "wrong_secret"),
    (("allowlist",), "ip_not_allowed"),
    (("both", "repeated"), "conflicting_credentials"),
    (("not enabled", "not configured"), "not_enabled"),
)


def is_multiprocess() -> bool:
    """True when prometheus_client stores values in ``PROMETHEUS_MULTIPROC_DIR`` files.

    prometheus_client decides once, when it is first imported, from that environment variable;
    ``bff serve --workers N`` sets it before any worker starts.
    """
    return values.ValueClass is not values.MutexValue


def status_class(status: int) -> str:
    """``2xx`` for 200..299 and so on; ``0xx`` when no response was sent."""
    index = status // 100
    return _STATUS_CLASSES[index] if 0 <= index < 6 else "0xx"


def auth_failure_reason(reason: str) -> str:
    """Fold a free-text authentication failure reason into :data:`AUTH_FAILURE_REASONS`."""
    lowered = reason.lower()
    for words, label in _REASON_RULES:
        if any(w in lowered for w in words):
            return label
    if lowered in ("service_unavailable", "unavailable"):
        return "unavailable"
    return "other"


class OperationNames:
    """Bounded GraphQL operation-name labels, per app.

    The first ``limit`` distinct names an app sees keep their own label; later ones count as
    ``other``, so a client inventing names cannot create series without end. Names registered
    with :meth:`register` (persisted operations) always keep theirs. Anonymous operations are
    ``anonymous``.
    """

    def __init__(self, limit: int = 100, *, max_length: int = 64) -> None:
        self.limit = limit
        self.max_length = max_length
        self._seen: dict[str, set[str]] = {}
        self._registered: dict[str, set[str]] = {}

    def register(self, app: str, names: Iterable[str]) -> None:
        """Always give these names their own label in ``app`` (within ``max_length``)."""
        self._registered.setdefault(app, set()).update(
            n for n in names if n and len(n) <= self.max_length
        )

    def label(self, app: str, name: str | None) -> str:
        """The label of operation ``name`` in ``app``."""
        if not name:
            return "anonymous"
        seen = self._seen.get(app)
        if seen is None:
            seen = self._seen[app] = set()
        if name in seen:
            return name
        if name in self._registered.get(app, ()):
            return name
        if len(seen) < self.limit and len(name) <= self.max_length:
            seen.add(name)
            return name
        return "other"


class UpstreamInstruments:
    """The metric children of one upstream, resolved once: ``count[outcome].inc()`` and
    ``latency.observe(seconds)`` cost no label lookup."""

    __slots__ = ("count", "latency", "name")

    def __init__(
        self, name: str, count: Mapping[str, DeferredCounter], latency: DeferredHistogram
    ) -> None:
        self.name = name
        self.count = count
        self.latency = latency


class Metrics:
    """The gateway's metric families and the hot-path shortcuts to their children.

    Event methods (:meth:`cache_result`, :meth:`auth_failure`, :meth:`rate_limited`, ...) may be
    called from any module; the edge layer and the upstream stage use the precomputed children.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        operation_names: OperationNames | None = None,
        multiprocess: bool | None = None,
    ) -> None:
        self.multiprocess = is_multiprocess() if multiprocess is None else multiprocess
        # No ``*_created`` series: they double the exposition and dashboards never use them.
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.operation_names = operation_names or OperationNames()
        reg = self.registry
        if not self.multiprocess:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
        self.requests = Counter(
            "bff_requests",
            "Requests served, by target (kind: app, route, health, admin, none), method and "
            "status class.",
            ["kind", "name", "method", "status"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "bff_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by target.",
            ["kind", "name"],
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.in_flight_gauge = Gauge(
            "bff_requests_in_flight",
            "Requests being served.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.upstream_requests = Counter(
            "bff_upstream_requests",
            "Upstream calls (retries included in one call), by upstream and outcome: a status "
            "class, timeout, error (connection failed or reset), unavailable (breaker open or "
            "no healthy target) or cancelled.",
            ["upstream", "outcome"],
            registry=reg,
        )
        self.upstream_duration = Histogram(
            "bff_upstream_request_duration_seconds",
            "Time to an upstream's response headers, retries included, by upstream.",
            ["upstream"],
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.breaker_state = Gauge(
            "bff_upstream_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open (the worst of the workers).",
            ["upstream"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = Counter(
            "bff_upstream_breaker_transitions",
            "Circuit breaker state changes, by upstream and new state.",
            ["upstream", "state"],
            registry=reg,
        )
        self.target_up = Gauge(
            "bff_upstream_target_up",
            "1 when a target may receive calls (healthy and not ejected), else 0.",
            ["upstream", "target"],
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.healthy_targets = Gauge(
            "bff_upstream_healthy_targets",
            "Targets of an upstream that may receive calls.",
            ["upstream"],
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.ratelimit_refusals = Counter(
            "bff_ratelimit_refusals",
            "Requests refused by rate limits (429), by plan (none: no plan applied).",
            ["plan"],
            registry=reg,
        )
        self.ratelimit_local_decisions = Counter(
            "bff_ratelimit_local_decisions",
            "Rate-limit decisions made with this process's own counters because Redis was "
            "unreachable (fail_open).",
            registry=reg,
        )
        self.ratelimit_redis_up = Gauge(
            "bff_ratelimit_redis_up",
            "1 when the rate limiter's Redis answers, 0 while it falls back (Redis state only).",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.cache_requests = Counter(
            "bff_cache_requests",
            "Cache lookups by cache (response, persisted_query, ...) and outcome (hit, miss, "
            "stale, bypass, ...).",
            ["cache", "outcome"],
            registry=reg,
        )
        self.auth_failures = Counter(
            "bff_auth_failures",
            "Credentials refused, by credential type (jwt, api_key) and reason.",
            ["credential", "reason"],
            registry=reg,
        )
        self.graphql_operations = Counter(
            "bff_graphql_operations",
            "GraphQL operations selected for execution, by app, operation name (bounded) and type.",
            ["app", "operation", "type"],
            registry=reg,
        )
        self.loader_batch_size = Histogram(
            "bff_graphql_loader_batch_size",
            "Keys per dataloader batch, by loader.",
            ["loader"],
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.upstream_per_operation = Histogram(
            "bff_graphql_upstream_requests",
            "Upstream calls made by one GraphQL request, by app and operation name.",
            ["app", "operation"],
            buckets=_UPSTREAM_PER_OPERATION_BUCKETS,
            registry=reg,
        )
        self.access_log_dropped = Counter(
            "bff_access_log_dropped",
            "Access log lines dropped because the log output could not keep up.",
            registry=reg,
        )
        #: Requests in flight in this process (read into the gauge when sampled).
        self.in_flight = 0
        self._request_children: dict[tuple[str, str, str, int], DeferredCounter] = {}
        self._duration_children: dict[tuple[str, str], DeferredHistogram] = {}
        self._cache_children: dict[tuple[str, str], DeferredCounter] = {}
        self._plan_children: dict[str | None, DeferredCounter] = {}
        self._operation_children: dict[tuple[str, str, str], DeferredCounter] = {}
        self._loader_children: dict[str, DeferredHistogram] = {}
        self._per_operation_children: dict[tuple[str, str], DeferredHistogram] = {}
        self._deferred: list[DeferredCounter | DeferredHistogram] = []
        self._samplers: list[Callable[[], None]] = []
        self._local_decisions_seen = 0

    def _counter(self, child: Any) -> DeferredCounter:
        stand_in = DeferredCounter(child)
        self._deferred.append(stand_in)
        return stand_in

    def _histogram(self, child: Any, bounds: tuple[float, ...]) -> DeferredHistogram:
        stand_in = DeferredHistogram(child, bounds)
        self._deferred.append(stand_in)
        return stand_in

    # -- requests (the edge layer) ----------------------------------------------------------

    def request_counter(self, kind: str, name: str, method: str, status: int) -> DeferredCounter:
        """The ``bff_requests_total`` child for one request's labels (cached)."""
        if method not in _METHODS:
            method = "OTHER"
        key = (kind, name, method, status // 100)
        child = self._request_children.get(key)
        if child is None:
            child = self._counter(self.requests.labels(kind, name, method, status_class(status)))
            self._request_children[key] = child
        return child

    def request_histogram(self, kind: str, name: str) -> DeferredHistogram:
        """The ``bff_request_duration_seconds`` child of a target (cached)."""
        key = (kind, name)
        child = self._duration_children.get(key)
        if child is None:
            child = self._histogram(self.request_duration.labels(kind, name), REQUEST_BUCKETS)
            self._duration_children[key] = child
        return child

    # -- upstreams --------------------------------------------------------------------------

    def upstream(self, name: str) -> UpstreamInstruments:
        """The children of upstream ``name``, for its chain stage."""
        count = {
            o: self._counter(self.upstream_requests.labels(name, o)) for o in UPSTREAM_OUTCOMES
        }
        latency = self._histogram(self.upstream_duration.labels(name), REQUEST_BUCKETS)
        return UpstreamInstruments(name, count, latency)

    def breaker_changed(self, upstream: str, old: str, new: str) -> None:
        """A circuit breaker listener (``CircuitBreaker.listeners``)."""
        self.breaker_transitions.labels(upstream, new).inc()
        self.breaker_state.labels(upstream).set(_BREAKER_STATES.get(new, 0.0))

    # -- events from other modules ----------------------------------------------------------

    def cache_result(self, cache: str, outcome: str) -> None:
        """Count one lookup of ``cache`` (``response``, ``persisted_query``, ...) with
        ``outcome`` (``hit``, ``miss``, ``stale``, ``bypass``, ...)."""
        key = (cache, outcome)
        child = self._cache_children.get(key)
        if child is None:
            child = self._counter(self.cache_requests.labels(cache, outcome))
            self._cache_children[key] = child
        child.inc()

    def rate_limited(self, plan: str | None) -> None:
        """Count one request refused by rate limits under ``plan`` (None: no plan)."""
        child = self._plan_children.get(plan)
        if child is None:
            child = self._counter(self.ratelimit_refusals.labels(plan or "none"))
            self._plan_children[plan] = child
        child.inc()

    def auth_failure(self, credential: str, reason: str) -> None:
        """Count refused credentials: ``credential`` is ``jwt`` or ``api_key``; ``reason`` is
        free text, folded by :func:`auth_failure_reason`."""
        self.auth_failures.labels(credential, auth_failure_reason(reason)).inc()

    def graphql_operation(self, app: str, name: str | None, kind: str) -> str:
        """Count an operation selected for execution; returns its (bounded) name label."""
        label = self.operation_names.label(app, name)
        key = (app, label, kind)
        child = self._operation_children.get(key)
        if child is None:
            child = self._counter(self.graphql_operations.labels(app, label, kind))
            self._operation_children[key] = child
        child.inc()
        return label

    def loader_batch(self, loader: str, size: int) -> None:
        """Record the size of one dataloader batch."""
        child = self._loader_children.get(loader)
        if child is None:
            child = self._histogram(self.loader_batch_size.labels(loader), _BATCH_BUCKETS)
            self._loader_children[loader] = child
        child.observe(size)

    def upstream_calls_per_operation(self, app: str, operation: str, calls: int) -> None:
        """Record the upstream calls one GraphQL request made (``operation``: a label from
        :meth:`graphql_operation`)."""
        key = (app, operation)
        child = self._per_operation_children.get(key)
        if child is None:
            child = self._histogram(
                self.upstream_per_operation.labels(app, operation),
                _UPSTREAM_PER_OPERATION_BUCKETS,
            )
            self._per_operation_children[key] = child
        child.observe(calls)

    # -- sampled state ----------------------------------------------------------------------

    def watch_upstreams(self, upstreams: Mapping[str, Any]) -> None:
        """Sample breaker states and target health of ``upstreams`` (``Upstream`` objects by
        name) and count breaker transitions as they happen. The mapping is read at each sample,
        so upstreams a reload adds, replaces or removes are followed."""
        shown: set[tuple[str, str]] = set()

        def sample() -> None:
            seen: set[tuple[str, str]] = set()
            for name, upstream in upstreams.items():
                breaker = upstream.breaker
                state = 0.0
                if breaker is not None:
                    if self.breaker_changed not in breaker.listeners:
                        breaker.listeners.append(self.breaker_changed)
                    state = _BREAKER_STATES.get(breaker.state, 0.0)
                self.breaker_state.labels(name).set(state)
                up = 0
                for target in upstream.targets:
                    ok = target.available()
                    up += ok
                    self.target_up.labels(name, target.base).set(1.0 if ok else 0.0)
                    seen.add((name, target.base))
                self.healthy_targets.labels(name).set(up)
            if not self.multiprocess:  # (prometheus_client cannot remove series there)
                gone = {name for name, _ in shown} - {name for name, _ in seen}
                with contextlib.suppress(KeyError):
                    for name, target in shown - seen:  # gone with a reload: no stale series
                        self.target_up.remove(name, target)
                    for name in gone:
                        self.breaker_state.remove(name)
                        self.healthy_targets.remove(name)
            shown.clear()
            shown.update(seen)

        sample()
        self._samplers.append(sample)

    def watch_rate_limiter(self, limiter: Any) -> None:
        """Sample the rate limiter's Redis fallback (``RateLimiter.stats()``)."""

        def sample() -> None:
            stats = limiter.stats()
            if "redis_available" not in stats:
                return
            self.ratelimit_redis_up.set(1.0 if stats["redis_available"] else 0.0)
            local = int(stats.get("local_decisions", 0))
            if local > self._local_decisions_seen:
                self.ratelimit_local_decisions.inc(local - self._local_decisions_seen)
            self._local_decisions_seen = local

        self._samplers.append(sample)

    def sample(self) -> None:
        """Publish what the hot path counted and read sampled state into its gauges (before an
        exposition, or periodically). Call it from the event loop."""
        for stand_in in self._deferred:
            stand_in.flush()
        self.in_flight_gauge.set(self.in_flight)
        for sampler in self._samplers:
            sampler()

    # -- exposition -------------------------------------------------------------------------

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics in the format ``accept`` asks for (Prometheus text by default):
        ``(body, content type)``. In multi-process mode, every worker's values, merged.

        Shows what was published: call :meth:`sample` first (on the event loop). Reads files in
        multi-process mode: run it in a thread, not on the event loop.
        """
        encoder, content_type = choose_encoder(accept)
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return encoder(registry), content_type
        return encoder(self.registry), content_type

    def mark_process_dead(self) -> None:
        """Publish the last counts, then drop this process's live gauges from the shared files
        (at shutdown)."""
        self.sample()
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
