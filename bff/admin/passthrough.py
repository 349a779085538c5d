"""``/routes``: the passthrough routes, managed at run time (see :mod:`bff.runtime.routes`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from bff.admin.models import ErrorBody
from bff.errors import Conflict, Forbidden, NotFound
from bff.runtime import FileRouteReadOnly, ManagedRoute, RouteExists, RouteInvalid, RouteManager

__all__ = ["RouteList", "RouteOut", "routes_router"]

RouteId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="The route's id.")]

_EXAMPLE = {
    "id": "reviews",
    "path": "/api/reviews",
    "methods": ["GET"],
    "upstream": "reviews",
    "strip_prefix": "/api",
    "cache": {"ttl": 30},
}
RouteBody = Annotated[
    dict[str, Any],
    Body(
        description="A route object, exactly as under `routes:` in the configuration file.",
        examples=[_EXAMPLE],
    ),
]
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description="A JSON merge patch (RFC 7396) of the route object: the keys given replace "
        "the stored ones, `null` removes a key (its default applies).",
        examples=[{"methods": ["GET", "POST"], "cache": None}],
    ),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON."},
    401: {"model": ErrorBody, "description": "Missing or wrong admin token."},
    422: {"model": ErrorBody, "description": "The route does not validate (key: problem; ...)."},
    503: {"model": ErrorBody, "description": "The store is unavailable."},
}
_MISSING: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No route."}}
_READ_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "A route of the configuration file (read-only)."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "A route with this id exists."}
}


class Problem(BaseModel):
    key: str = Field(description="Key path in the route object ('' for the route as a whole).")
    message: str


class RouteOut(BaseModel):
    """A passthrough route as served (or, with problems, stored but not served)."""

    id: str
    source: Literal["file", "admin"] = Field(
        description="file: from the configuration file (read-only); admin: managed here."
    )
    active: bool = Field(description="Served by the proxy.")
    path: str | None
    methods: list[str]
    upstreams: list[str]
    definition: dict[str, Any] = Field(description="The route object (defaults left out).")
    problems: list[Problem] = Field(
        description="Why a stored route is not served (the configuration changed under it)."
    )
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, route: ManagedRoute) -> RouteOut:
        cfg = route.config
        definition = route.definition
        return cls(
            id=route.id,
            source=route.source,
            active=route.active,
            path=cfg.path if cfg is not None else _str(definition.get("path")),
            methods=list(cfg.methods) if cfg is not None else [],
            upstreams=cfg.upstream_names if cfg is not None else [],
            definition=definition,
            problems=[Problem(key=k, message=m) for k, m in route.problems],
            created_at=_time(route.created_at),
            updated_at=_time(route.updated_at),
        )


class RouteList(BaseModel):
    routes: list[RouteOut]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _invalid(exc: RouteInvalid) -> RequestValidationError:
    # Answered 422 by the admin app's validation handler: "key: problem; key: problem".
    return RequestValidationError(
        [
            {"type": "value_error", "loc": ("body", key) if key else ("body",), "msg": message}
            for key, message in exc.problems
        ]
    )


def routes_router(manager: RouteManager) -> APIRouter:
    """``/routes`` and ``/routes/{id}``."""
    router = APIRouter(tags=["routes"], responses=_ERRORS)

    def missing(route_id: str) -> NotFound:
        return NotFound(f"no route with id {route_id!r}")

    @router.get("/routes", response_model=RouteList)
    async def list_routes() -> RouteList:
        """Every route: the file's (read-only), then those managed here, oldest first."""
        return RouteList(routes=[RouteOut.of(r) for r in manager.list()])

    @router.post("/routes", status_code=201, response_model=RouteOut, responses=_CONFLICT)
    async def create_route(body: RouteBody) -> RouteOut:
        """Add a route. It is validated like the file's routes (known upstream, path clear of
        the gateway's own and of other routes...), stored, and served by every gateway process
        within seconds."""
        try:
            return RouteOut.of(await manager.create(body))
        except RouteInvalid as exc:
            raise _invalid(exc) from None
        except RouteExists as exc:
            raise Conflict(str(exc)) from None

    @router.get("/routes/{route_id}", response_model=RouteOut, responses=_MISSING)
    async def get_route(route_id: RouteId) -> RouteOut:
        route = manager.get(route_id)
        if route is None:
            raise missing(route_id)
        return RouteOut.of(route)

    @router.patch(
        "/routes/{route_id}", response_model=RouteOut, responses={**_MISSING, **_READ_ONLY}
    )
    async def patch_route(route_id: RouteId, body: PatchBody) -> RouteOut:
        """Change a route managed here (merge patch). The id cannot change."""
        try:
            route = await manager.update(route_id, body)
        except RouteInvalid as exc:
            raise _invalid(exc) from None
        except FileRouteReadOnly as exc:
            raise Forbidden(str(exc)) from None
        if route is None:
            raise missing(route_id)
        return RouteOut.of(route)

    @router.delete(
        "/routes/{route_id}", response_model=RouteOut, responses={**_MISSING, **_READ_ONLY}
    )
    async def delete_route(route_id: RouteId) -> RouteOut:
        """Remove a route managed here; the answer is the route removed."""
        try:
            route = await manager.delete(route_id)
        except FileRouteReadOnly as exc:
            raise Forbidden(str(exc)) from None
        if route is None:
            raise missing(route_id)
        return RouteOut.of(route)

    return router
