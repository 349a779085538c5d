"""The admin API: a FastAPI app under ``admin.path``, behind a bearer token.

:class:`AdminApp` is the pure-ASGI door: it compares the bearer token in constant time (401 when
wrong or missing, before FastAPI sees anything) and turns anything unexpected into a masked JSON
500. Inside, FastAPI serves the routes of :mod:`bff.admin.routes` and the OpenAPI document at
``<admin.path>/openapi.json`` (behind the token too). Every error answer has the gateway's REST
error body ``{"error": {"code", "message", "request_id"}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Collection, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from bff.admin.metrics import metrics_router
from bff.admin.page import AdminPage
from bff.admin.passthrough import routes_router
from bff.admin.routes import keys_router, services_router
from bff.asgi import ASGIApp, Message, Receive, Scope, Send, send_response
from bff.auth import ApiKeyManager, Authenticator
from bff.edge.request_id import REQUEST_ID_KEY
from bff.error_mapping import rest_error
from bff.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from bff.runtime import RouteManager
from bff.runtime.stats_exchange import StatsSource
from bff.store import StoreError

__all__ = ["AdminApp", "build_admin_app"]

log = logging.getLogger("bff.admin")


def _error_response(request: Request, exc: BaseException) -> Response:
    status, headers, body = rest_error(exc, request.scope.get(REQUEST_ID_KEY))
    extra = {name: value for name, value in headers if name != "content-type"}
    return Response(body, status_code=status, headers=extra, media_type="application/json")


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    problems: list[str] = []
    for error in exc.errors()[:10]:
        if error.get("type") == "json_invalid":
            return 400, "the request body is not valid JSON"
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(f"{loc}: {message}" if loc else message)
    return 422, "; ".join(problems) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> Response:
        return _error_response(request, exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, message = _validation_message(exc)
        response = _error_response(request, BadRequest(message))
        response.status_code = status
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: GatewayError
        if exc.status_code == 404:
            error = NotFound(f"no admin endpoint at {request.url.path!r}"[:200])
        elif exc.status_code == 405:
            error = MethodNotAllowed(
                allow=[m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m]
            )
        else:
            error = BadRequest(str(exc.detail)[:200])
        response = _error_response(request, error)
        if exc.status_code not in (404, 405):
            response.status_code = exc.status_code
        return response

    async def store_error(request: Request, exc: Exception) -> Response:
        log.warning("admin request failed: %s", exc)
        return _error_response(request, ServiceUnavailable("the store is unavailable"))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("admin request failed", exc_info=exc)
        return _error_response(request, exc)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(Exception, internal_error)


class AdminApp:
    """The admin API's door: bearer token in constant time, then the FastAPI app.

    ``page`` answers GET and HEAD at ``page_paths`` (the admin page) without a token: it holds
    no data and asks for the token itself.
    """

    def __init__(
        self, app: ASGIApp, token: str, *, page: ASGIApp | None = None, page_paths: Any = ()
    ) -> None:
        self.app = app
        self._digest = hashlib.sha256(token.encode()).digest()
        self.page = page
        self._page_paths = frozenset(page_paths)

    def _authorized(self, scope: Scope) -> bool:
        presented = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    presented = credentials.strip()
                break
        # Comparing digests: constant time, and the token's length is not revealed either.
        return hmac.compare_digest(hashlib.sha256(presented).digest(), self._digest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if (
            self.page is not None
            and scope["path"] in self._page_paths
            and scope["method"] in ("GET", "HEAD")
        ):
            await self.page(scope, receive, send)
            return
        if not self._authorized(scope):
            exc = Unauthenticated("a valid admin token is required")
            status, headers, body = rest_error(exc, scope.get(REQUEST_ID_KEY))
            await send_response(send, status, body, headers)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Starlette re-raises after its 500 handler answered; answer only if it did not.
            if not started:
                log.exception("admin request failed")
                status, headers, body = rest_error(RuntimeError(), scope.get(REQUEST_ID_KEY))
                await send_response(send, status, body, headers)


def build_admin_app(
    *,
    path: str,
    token: str,
    manager: ApiKeyManager,
    authenticator: Authenticator,
    upstreams: Mapping[str, Any],
    routes: RouteManager | None = None,
    stats: StatsSource | None = None,
    app_names: Collection[str] = (),
) -> AdminApp:
    """The admin API for paths under ``path`` (``/admin``): API keys, upstream services, and
    with ``routes`` the passthrough routes, with ``stats`` the per-route and per-app figures
    (of the GraphQL apps ``app_names``)."""
    app = FastAPI(
        title="bff admin API",
        version="1",
        description="API keys, passthrough routes, upstream services and per-route metrics "
        "of a bff gateway. "
        "Every request needs `Authorization: Bearer <admin.token>`.",
        openapi_url=f"{path}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.include_router(keys_router(manager, authenticator), prefix=path)
    app.include_router(services_router(upstreams), prefix=path)
    if routes is not None:
        app.include_router(routes_router(routes), prefix=path)
        if stats is not None:
            served = routes
            router = metrics_router(
                stats, route_ids=lambda: [r.id for r in served.routes], app_names=app_names
            )
            app.include_router(router, prefix=path)
    return AdminApp(app, token, page=AdminPage(path), page_paths=(path, path + "/"))
