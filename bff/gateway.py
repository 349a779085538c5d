"""The root ASGI application, built from a configuration.

:func:`build_gateway` makes every per-process object once (upstream pools, schemas, document
caches, clients) and assembles the request path as a plain list of pure-ASGI edge layers around a
dispatcher that knows the GraphQL apps, the health endpoints and the passthrough routes.
The ASGI lifespan closes what was opened.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import orjson

from bff.admin import build_admin_app
from bff.asgi import ASGIApp, Receive, Scope, Send, send_response
from bff.auth import ApiKeyManager, AuthenticationLayer, Authenticator
from bff.config import GatewayConfig
from bff.edge import REQUEST_ID_KEY, RequestIdLayer
from bff.edge.client_ip import ClientIp
from bff.edge.request_timeout import RequestTimeoutLayer
from bff.error_mapping import rest_error
from bff.errors import NotFound
from bff.graphql import (
    ClientCache,
    FrontendSchema,
    GraphQLApp,
    GraphQLAppSettings,
    Registry,
    build_schema,
)
from bff.graphql.guards import install_guards
from bff.proxy import Proxy
from bff.ratelimit import RateLimiter, RateLimitLayer, Target, proxy_route_resolver
from bff.store import Store
from bff.upstream import TransportKind, UpstreamPool

__all__ = ["Gateway", "build_gateway"]

log = logging.getLogger("bff.gateway")


class Gateway:
    """The gateway process's ASGI app. Build it with :func:`build_gateway`."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        upstreams: UpstreamPool,
        registry: Registry | None,
        schemas: dict[str, FrontendSchema],
        graphql_apps: dict[str, GraphQLApp],
        store: Store | None = None,
        authenticator: Authenticator | None = None,
        admin: ASGIApp | None = None,
        proxy: ASGIApp | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config
        self.proxy = proxy
        self.rate_limiter = rate_limiter
        self.client_ip = ClientIp(config.rate_limits.trusted_proxies)
        self.store = store
        self.authenticator = authenticator
        self.admin = admin
        self._admin_path = config.admin.path
        self.upstreams = upstreams
        self.registry = registry
        self.schemas = schemas
        self.graphql_apps = graphql_apps
        self.ready = False
        self._exact: dict[str, ASGIApp] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
        }
        for app in graphql_apps.values():
            self._exact[app.settings.path] = app
        self._on_shutdown: list[Callable[[], Any]] = [upstreams.aclose]
        if authenticator is not None:
            self._on_shutdown.append(authenticator.aclose)
        if store is not None:
            self._on_shutdown.append(store.aclose)
        if rate_limiter is not None:
            self._on_shutdown.append(rate_limiter.aclose)
        self._app: ASGIApp = self._build_edge_stack(self._dispatch)

    def _build_edge_stack(self, app: ASGIApp) -> ASGIApp:
        # Outermost first, as a request meets them.
        layers: list[Callable[[ASGIApp], ASGIApp]] = [RequestIdLayer, RequestTimeoutLayer]
        if self.authenticator is not None:
            layers.append(self._authentication_layer)
        if self.rate_limiter is not None:
            layers.append(self._rate_limit_layer)  # after authentication: it needs the principal
        for layer in reversed(layers):
            app = layer(app)
        return app

    def _authentication_layer(self, app: ASGIApp) -> ASGIApp:
        assert self.authenticator is not None
        metrics = self.config.observability.metrics
        return AuthenticationLayer(
            app,
            self.authenticator,
            graphql_paths=[a.settings.path for a in self.graphql_apps.values()],
            exempt_paths=["/healthz", "/readyz", *([metrics.path] if metrics.enabled else [])],
            # The admin API checks its own token (and answers 404 everywhere without one).
            exempt_prefixes=[self._admin_path] if self.config.admin.enabled else [],
            client_ip=self.client_ip,
        )

    def _rate_limit_layer(self, app: ASGIApp) -> ASGIApp:
        assert self.rate_limiter is not None
        metrics = self.config.observability.metrics
        apps = self.config.graphql.apps
        return RateLimitLayer(
            app,
            self.rate_limiter,
            graphql_targets={
                a.settings.path: Target("app", name, apps[name].rate_limit, apps[name].global_limit)
                for name, a in self.graphql_apps.items()
            },
            exempt_paths=["/healthz", "/readyz", *([metrics.path] if metrics.enabled else [])],
            exempt_prefixes=[self._admin_path] if self.config.admin.enabled else [],
            client_ip=self.client_ip,
            route_of=proxy_route_resolver(self.proxy) if self.proxy is not None else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        app = self._exact.get(path)
        if app is None and len(path) > 1 and path.endswith("/"):
            app = self._exact.get(path.rstrip("/"))
        if app is not None:
            await app(scope, receive, send)
            return
        if self.admin is not None and (
            path == self._admin_path or path.startswith(self._admin_path + "/")
        ):
            await self.admin(scope, receive, send)
            return
        if self.proxy is not None:
            await self.proxy(scope, receive, send)
            return
        status, headers, body = rest_error(
            NotFound(f"no route for {path!r}"[:300]), scope.get(REQUEST_ID_KEY)
        )
        await send_response(send, status, body, headers)

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_response(send, 200, b'{"status":"ok"}', [("content-type", "application/json")])

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        checks = {"upstream_pools": "ok" if self.ready else "not started"}
        ok = all(v == "ok" for v in checks.values())
        body = orjson.dumps({"status": "ok" if ok else "unavailable", "checks": checks})
        await send_response(send, 200 if ok else 503, body, [("content-type", "application/json")])

    async def startup(self) -> None:
        """Start background work; the gateway reports ready afterwards."""
        if self.store is not None:
            await self.store.open()
        if self.authenticator is not None:
            await self.authenticator.start()
        self.upstreams.start()  # active health checks; stopped by upstreams.aclose
        _tune_garbage_collector()
        self.ready = True

    async def shutdown(self) -> None:
        """Report not ready, then close every pool and background task."""
        self.ready = False
        for close in self._on_shutdown:
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:
                log.exception("error while shutting down")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _tune_garbage_collector() -> None:
    """Keep start-up objects out of the cycle collector's scans.

    Everything built at start-up (schemas, plans, pools) lives as long as the process; frozen,
    the collector never traverses it again. Raising the collection thresholds as well was
    measured and rejected: with compiled plans it saved about 5% of q1's time and cost about
    80 MB of peak RSS at 32 concurrent queries (docs/performance.md).
    """
    gc.collect()
    gc.freeze()


def build_gateway(config: GatewayConfig, *, transport: TransportKind | None = None) -> Gateway:
    """Build the gateway for ``config``; raises on a schema module that cannot be built."""
    upstreams = UpstreamPool.from_config(config.upstreams, transport=transport)
    registry: Registry | None = None
    schemas: dict[str, FrontendSchema] = {}
    apps: dict[str, GraphQLApp] = {}
    if config.graphql.apps:
        registry = Registry.from_module_names(config.graphql.schema_modules)
        clients = ClientCache(upstreams)
        for name, app_cfg in config.graphql.apps.items():
            schema = build_schema(name, registry)
            install_guards(schema._schema)
            schemas[name] = schema
            settings = GraphQLAppSettings(
                name=name,
                path=app_cfg.path,
                auth=app_cfg.auth,
                graphiql=app_cfg.graphiql,
                timeout=app_cfg.timeout,
                max_body_bytes=config.limits.max_body_bytes,
                max_tokens=app_cfg.max_tokens,
                hide_suggestions=not config.is_development,
                compiled=config.graphql.compiled_plans,
                n_plus_one_threshold=(
                    config.graphql.n_plus_one_threshold if config.is_development else None
                ),
                max_depth=app_cfg.max_depth,
                max_aliases=app_cfg.max_aliases,
                max_root_fields=app_cfg.max_root_fields,
                max_cost=app_cfg.max_cost,
                cost_per_request=config.graphql.cost_per_request,
                max_batch_operations=(
                    app_cfg.batching.max_operations if app_cfg.batching.enabled else 0
                ),
            )
            apps[name] = GraphQLApp(
                settings, schema._schema, loaders=registry.loaders, clients=clients
            )
    store = Store.from_config(config.store)
    authenticator = Authenticator.from_config(config, store)
    admin: ASGIApp | None = None
    if config.admin.enabled and config.admin.token:
        manager = ApiKeyManager(
            store, authenticator.key_events, tiers=list(config.rate_limits.plans) or None
        )
        admin = build_admin_app(
            path=config.admin.path,
            token=config.admin.token,
            manager=manager,
            authenticator=authenticator,
            upstreams=upstreams,
        )
    proxy = Proxy.from_config(config, upstreams) if config.routes else None
    return Gateway(
        config,
        proxy=proxy,
        upstreams=upstreams,
        registry=registry,
        schemas=schemas,
        graphql_apps=apps,
        store=store,
        authenticator=authenticator,
        admin=admin,
        rate_limiter=RateLimiter.from_config(config),
    )
