"""The root ASGI application, built from a configuration.

:func:`build_gateway` makes every per-process object once (upstream pools, schemas, document
caches, clients) and assembles the request path as a plain list of pure-ASGI edge layers around a
dispatcher that knows the GraphQL apps, the health endpoints and the passthrough routes.
The ASGI lifespan closes what was opened.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from bff.admin import build_admin_app
from bff.asgi import ASGIApp, Receive, Scope, Send, send_response
from bff.auth import ApiKeyManager, AuthenticationLayer, Authenticator
from bff.cache import CacheStore, build_cache_store
from bff.config import GatewayConfig, UpstreamConfig
from bff.edge import REQUEST_ID_KEY, RequestIdLayer
from bff.edge.client_ip import ClientIp
from bff.edge.compression import Compression, CompressionLayer
from bff.edge.cors import CorsLayer, CorsPolicy
from bff.edge.limits import HeaderLimitLayer
from bff.edge.request_timeout import RequestTimeoutLayer
from bff.edge.security_headers import SecurityHeadersLayer
from bff.edge.telemetry import TelemetryLayer
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
from bff.graphql.loader_cache import LoaderCache
from bff.graphql.operations import OperationCatalogue
from bff.observability import MetricsEndpoint, Readiness, Telemetry
from bff.proxy import Proxy
from bff.ratelimit import RateLimiter, RateLimitLayer, Target, proxy_route_resolver
from bff.runtime import Reloader, ReloadResult, RouteManager, change_events_for, ensure_rate_limiter
from bff.runtime.stats_exchange import StatsSource, stats_source_for
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
        telemetry: Telemetry | None = None,
        route_manager: RouteManager | None = None,
        cache: CacheStore | None = None,
        operations: OperationCatalogue | None = None,
    ) -> None:
        self.config = config
        #: The process's cache store (GraphQL responses, APQ, loader values, REST responses).
        self.cache = cache
        #: Registered GraphQL operations (allow-listed apps), refreshed from the store.
        self.operations = operations
        #: The routes the proxy serves (the file's and admin-managed ones), when managed.
        self.route_manager = route_manager
        #: Applies configuration reloads (set by :func:`build_gateway`).
        self.reloader: Reloader | None = None
        #: The admin API's per-route figures (set by :func:`build_gateway`).
        self.stats: StatsSource | None = None
        #: Called once started (ready) and when shutdown begins: the process's signal handlers.
        self.on_started: list[Callable[[], Any]] = []
        self.on_stopping: list[Callable[[], Any]] = []
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        state = config.state
        self.readiness = Readiness(
            store=store,
            redis_url=state.redis_url if state.backend == "redis" else None,
            upstreams=upstreams,
        )
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
        if self.telemetry.metrics is not None:
            endpoint = MetricsEndpoint(self.telemetry.metrics)
            self._exact[config.observability.metrics.path] = endpoint
            self.telemetry.watch(upstreams, rate_limiter)
        if rate_limiter is not None:
            rate_limiter.on_refused = self.telemetry.rate_limited
        self._on_shutdown: list[Callable[[], Any]] = [upstreams.aclose, self.readiness.aclose]
        if authenticator is not None:
            self._on_shutdown.append(authenticator.aclose)
        if store is not None:
            self._on_shutdown.append(store.aclose)
        if rate_limiter is not None:
            self._on_shutdown.append(rate_limiter.aclose)
        if cache is not None:
            self._on_shutdown.append(cache.aclose)
        if operations is not None:
            self._on_shutdown.insert(0, operations.aclose)  # it polls the store: stop it first
        self._on_shutdown.append(self.telemetry.aclose)  # last: flushes logs and spans
        if route_manager is not None:
            # First: it reads the store and Redis, which close after it.
            self._on_shutdown.insert(0, route_manager.aclose)
            route_manager.on_change(lambda routes: ensure_rate_limiter(self, routes))
        self._app: ASGIApp = self._build_edge_stack(self._dispatch)

    def _build_edge_stack(self, app: ASGIApp) -> ASGIApp:
        # Outermost first, as a request meets them.
        layers: list[Callable[[ASGIApp], ASGIApp]] = [RequestIdLayer]
        if self.telemetry.active:
            layers.append(self._telemetry_layer)  # sees every answer, refusals included
        layers.append(SecurityHeadersLayer)
        layers.append(self._header_limit_layer)
        if self.config.cors.allow_origins:
            # Before authentication and rate limits: preflights carry no credentials, and
            # refusals must carry CORS headers for a browser to read them.
            layers.append(self._cors_layer)
        layers.append(RequestTimeoutLayer)
        if self.config.compression.enabled:
            layers.append(self._compression_layer)
        if self.authenticator is not None:
            layers.append(self._authentication_layer)
        if self.rate_limiter is not None:
            layers.append(self._rate_limit_layer)  # after authentication: it needs the principal
        for layer in reversed(layers):
            app = layer(app)
        return app

    def _header_limit_layer(self, app: ASGIApp) -> ASGIApp:
        return HeaderLimitLayer(app, self.config.limits.max_header_bytes)

    def _cors_layer(self, app: ASGIApp) -> ASGIApp:
        c = self.config.cors
        return CorsLayer(
            app,
            CorsPolicy(
                allow_origins=list(c.allow_origins),
                allow_methods=list(c.allow_methods),
                allow_headers=list(c.allow_headers),
                expose_headers=list(c.expose_headers),
                allow_credentials=c.allow_credentials,
                max_age=c.max_age,
            ),
        )

    def _telemetry_layer(self, app: ASGIApp) -> ASGIApp:
        metrics = self.config.observability.metrics
        targets = {a.settings.path: ("app", name) for name, a in self.graphql_apps.items()}
        targets.update({"/healthz": ("health", "healthz"), "/readyz": ("health", "readyz")})
        return TelemetryLayer(
            app,
            self.telemetry,
            targets=targets,
            admin_prefix=self._admin_path if self.config.admin.enabled else None,
            # Scrapes are not traffic.
            exempt_paths=[metrics.path, metrics.path + "/"] if metrics.enabled else [],
            route_of=self._route_id_of,
        )

    def _route_id_of(self, scope: Scope) -> str | None:
        # For requests refused before the proxy saw them: whose route were they for?
        if self.proxy is None:
            return None
        route = proxy_route_resolver(self.proxy)(scope)
        return route.id if route is not None else None

    def _compression_layer(self, app: ASGIApp) -> ASGIApp:
        c = self.config.compression
        return CompressionLayer(app, Compression(c.min_bytes, c.gzip_level, c.brotli_quality))

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
            on_refused=self.telemetry.auth_refused,
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
        if self.ready:
            ok, result = await self.readiness.check()
        else:
            state = "not serving (starting or shutting down)"
            ok, result = False, {"checks": {"gateway": state}, "reasons": [f"gateway: {state}"]}
            result = {"status": "unavailable", **result}
        headers = [("content-type", "application/json"), ("cache-control", "no-store")]
        await send_response(send, 200 if ok else 503, orjson.dumps(result), headers)

    async def startup(self) -> None:
        """Start background work; the gateway reports ready afterwards."""
        if self.store is not None:
            await self.store.open()
        if self.operations is not None:
            await self.operations.start()
        if self.authenticator is not None:
            await self.authenticator.start()
        if self.route_manager is not None:
            await self.route_manager.start()
        self.upstreams.start()  # active health checks; stopped by upstreams.aclose
        self.telemetry.start()
        _tune_garbage_collector()
        self.ready = True
        for hook in self.on_started:
            hook()

    def begin_drain(self) -> None:
        """Shutting down: report not ready from now on (the server stops accepting and lets
        requests in flight finish; :meth:`shutdown` closes the pools afterwards)."""
        if self.ready:
            log.info("draining: not ready any more")
        self.ready = False

    async def reload(self, config: GatewayConfig) -> ReloadResult:
        """Apply a new configuration's upstreams, routes and rate limits (see
        :mod:`bff.runtime.reload`); the result says what changed or why nothing did."""
        if self.reloader is None:
            raise RuntimeError("this gateway was not built by build_gateway")
        return await self.reloader.apply(config)

    def reconfigure(self, config: GatewayConfig, *, rate_limiter: RateLimiter | None) -> None:
        """Serve new requests with ``config`` (its swappable parts: see
        :mod:`bff.runtime.reload`) and ``rate_limiter``: the edge layers are rebuilt and swapped
        in one assignment; requests in flight keep the ones they entered."""
        old = self.rate_limiter
        if rate_limiter is not None and rate_limiter is not old:
            rate_limiter.on_refused = self.telemetry.rate_limited
            if old is None or rate_limiter.store is not old.store:
                self._on_shutdown.insert(-1, rate_limiter.aclose)  # a store of its own
        self.config = config
        self.client_ip = ClientIp(config.rate_limits.trusted_proxies)
        self.rate_limiter = rate_limiter
        self._app = self._build_edge_stack(self._dispatch)

    async def shutdown(self) -> None:
        """Report not ready, then close every pool and background task."""
        self.ready = False
        for hook in self.on_stopping:
            try:
                hook()
            except Exception:
                log.exception("error while shutting down")
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


def build_gateway(
    config: GatewayConfig,
    *,
    transport: TransportKind | None = None,
    telemetry: Telemetry | None = None,
) -> Gateway:
    """Build the gateway for ``config``; raises on a schema module that cannot be built.

    ``telemetry`` replaces the one ``config.observability`` describes (tests hand in one with
    an in-memory span exporter or a captured access log).
    """
    if telemetry is None:
        telemetry = Telemetry.from_config(config.observability)
    observe = telemetry.upstream_stage

    def build_upstreams(configs: Mapping[str, UpstreamConfig]) -> UpstreamPool:
        # Also what a reload builds new upstreams with.
        return UpstreamPool.from_config(configs, transport=transport, observe=observe)

    upstreams = build_upstreams(config.upstreams)
    registry: Registry | None = None
    schemas: dict[str, FrontendSchema] = {}
    apps: dict[str, GraphQLApp] = {}
    cache = build_cache_store(config.state)
    operations: OperationCatalogue | None = None
    if any(a.persisted_queries != "off" for a in config.graphql.apps.values()):
        operations = OperationCatalogue(interval=config.store.poll_interval)
    if config.graphql.apps:
        registry = Registry.from_module_names(config.graphql.schema_modules)
        clients = ClientCache(upstreams)
        loader_cache = None
        if config.graphql.loader_cache and any(s.cached for s in registry.loaders.values()):
            loader_cache = LoaderCache(cache)
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
                persisted_queries=app_cfg.persisted_queries,
                apq_ttl=config.graphql.apq_ttl,
                encodings=tuple(app_cfg.encodings),
                response_cache=config.graphql.response_cache,
            )
            apps[name] = GraphQLApp(
                settings,
                schema._schema,
                loaders=registry.loaders,
                clients=clients,
                cache=cache,
                operations=operations,
                type_options=registry.type_options,
                loader_cache=loader_cache,
            )
    store = Store.from_config(config.store)
    if operations is not None:
        operations.repository = store.persisted_operations
    authenticator = Authenticator.from_config(config, store)
    # Always a proxy, even with no routes yet: the admin API and reloads may add some.
    proxy = Proxy.from_config(config, upstreams, cache=cache)
    admin: ASGIApp | None = None
    route_manager: RouteManager | None = None
    stats: StatsSource | None = None
    if config.admin.enabled and config.admin.token:
        route_manager = RouteManager(
            config, proxy, upstreams, store, events=change_events_for(config, "routes")
        )
        if telemetry.rolling is not None:
            stats = stats_source_for(config, telemetry.rolling)
        manager = ApiKeyManager(
            store, authenticator.key_events, tiers=list(config.rate_limits.plans) or None
        )
        admin = build_admin_app(
            path=config.admin.path,
            token=config.admin.token,
            manager=manager,
            authenticator=authenticator,
            upstreams=upstreams,
            routes=route_manager,
            stats=stats,
            app_names=list(apps),
        )
    gateway = Gateway(
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
        telemetry=telemetry,
        route_manager=route_manager,
        cache=cache,
        operations=operations,
    )
    gateway.reloader = Reloader(gateway, build_upstreams)
    gateway._on_shutdown.insert(0, gateway.reloader.aclose)
    if stats is not None:
        gateway.stats = stats
        gateway.on_started.append(stats.start)
        gateway._on_shutdown.insert(0, stats.aclose)
    return gateway
