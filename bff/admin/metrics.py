"""``/metrics/routes/{id}`` and ``/metrics/apps/{name}``: what a route or app did lately.

Figures come from the rolling windows every process keeps (summed over every live process with
``state.backend: redis``; see :mod:`bff.runtime.stats_exchange`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from bff.admin.models import ErrorBody
from bff.errors import NotFound
from bff.observability import WindowSummary, target_key
from bff.runtime.stats_exchange import PERIODS, StatsSource

__all__ = ["TargetMetrics", "metrics_router"]

Period = Literal["1m", "5m", "15m", "1h"]
PeriodQuery = Annotated[Period, Query(description="The window: 1m, 5m (default), 15m or 1h.")]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong admin token."},
    404: {"model": ErrorBody, "description": "No such route or app."},
    422: {"model": ErrorBody, "description": "An unknown period."},
}


class TargetMetrics(BaseModel):
    """A route's or app's requests over the period."""

    kind: Literal["route", "app"]
    id: str
    period: Period
    period_seconds: float
    processes: int = Field(description="Gateway processes whose requests are counted.")
    requests: int
    requests_per_second: float
    successful: int = Field(description="Answers below 400.")
    client_errors: int = Field(description="4xx answers, rate-limit refusals included.")
    failed: int = Field(description="5xx answers (the gateway's or the upstream's).")
    avg_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    rate_limited: int = Field(description="Requests refused by rate limits (429).")
    cache_hits: int
    cache_lookups: int
    cache_hit_rate: float | None = Field(description="Hits over lookups (None: no lookups).")

    @classmethod
    def of(
        cls, kind: Literal["route", "app"], name: str, period: Period, s: WindowSummary, n: int
    ) -> TargetMetrics:
        data = s.to_dict(with_buckets=False)
        seconds = PERIODS[period]
        return cls(
            kind=kind,
            id=name,
            period=period,
            period_seconds=seconds,
            processes=n,
            requests=s.requests,
            requests_per_second=round(s.requests / seconds, 3),
            successful=s.successes,
            client_errors=s.client_errors,
            failed=s.failures,
            avg_ms=data["avg_ms"],
            p95_ms=data["p95_ms"],
            p99_ms=data["p99_ms"],
            rate_limited=s.rate_limited,
            cache_hits=s.cache_hits,
            cache_lookups=s.cache_lookups,
            cache_hit_rate=data["cache_hit_rate"],
        )


class MetricsList(BaseModel):
    items: list[TargetMetrics]


def metrics_router(
    source: StatsSource,
    *,
    route_ids: Callable[[], Collection[str]],
    app_names: Collection[str],
) -> APIRouter:
    """``/metrics/routes``, ``/metrics/routes/{id}``, ``/metrics/apps``, ``/metrics/apps/{name}``.

    ``route_ids()`` lists the routes served now (the file's and admin-managed ones).
    """
    router = APIRouter(tags=["metrics"], responses=_ERRORS)

    async def figures(kind: Literal["route", "app"], name: str, period: Period) -> TargetMetrics:
        summary, processes = await source.summary(target_key(kind, name), period)
        return TargetMetrics.of(kind, name, period, summary, processes)

    @router.get("/metrics/routes", response_model=MetricsList)
    async def all_routes(period: PeriodQuery = "5m") -> MetricsList:
        """Every route's figures (what the admin page charts)."""
        return MetricsList(items=[await figures("route", r, period) for r in route_ids()])

    @router.get("/metrics/routes/{route_id}", response_model=TargetMetrics)
    async def one_route(route_id: Name, period: PeriodQuery = "5m") -> TargetMetrics:
        """Requests, successes, failures, latency (average, p95, p99), rate-limit refusals and
        cache hit rate of a passthrough route over the last ``period``."""
        if route_id not in route_ids():
            raise NotFound(f"no route with id {route_id!r}")
        return await figures("route", route_id, period)

    @router.get("/metrics/apps", response_model=MetricsList)
    async def all_apps(period: PeriodQuery = "5m") -> MetricsList:
        return MetricsList(items=[await figures("app", a, period) for a in app_names])

    @router.get("/metrics/apps/{name}", response_model=TargetMetrics)
    async def one_app(name: Name, period: PeriodQuery = "5m") -> TargetMetrics:
        """The same figures for a GraphQL app."""
        if name not in app_names:
            raise NotFound(f"no GraphQL app named {name!r}")
        return await figures("app", name, period)

    return router
