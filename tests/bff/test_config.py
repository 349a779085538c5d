"""Tests of bff.config: loading, env expansion, defaults, and every rejection with its key path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bff.config import (
    GatewayConfig,
    RouteConfig,
    TargetConfig,
    config_json_schema,
    expand_env,
    load_config,
    parse_config,
    summarize,
)
from bff.errors import ConfigError

REFERENCE = Path("/work/shared/reference/gateway.example.yaml")
DEMO = Path(__file__).resolve().parents[2] / "bff" / "demo.yaml"

UPSTREAMS = """
upstreams:
  users: {targets: ["http://127.0.0.1:9101"]}
  orders: {targets: ["http://127.0.0.1:9102"]}
"""


def cfg(text: str, env: dict[str, str] | None = None) -> GatewayConfig:
    return parse_config(textwrap.dedent(text), env=env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        cfg(text, env)
    assert info.value.problems, "a ConfigError must carry problems"
    for path, msg in info.value.problems:
        assert "pydantic" not in msg and "errors.pydantic.dev" not in msg
        assert "\n" not in msg, f"{path}: multi-line message {msg!r}"
    return info.value.problems


def problem_at(text: str, path: str, env: dict[str, str] | None = None) -> str:
    """The message reported at ``path`` (fails listing all problems when there is none)."""
    found = problems(text, env)
    for p, msg in found:
        if p == path:
            return msg
    raise AssertionError(f"no problem at {path!r}; got {found}")


def with_routes(routes: str, extra: str = "") -> str:
    return UPSTREAMS + "routes:\n" + textwrap.indent(textwrap.dedent(routes), "  ") + extra


# --------------------------------------------------------------------------------------------
# The reference file
# --------------------------------------------------------------------------------------------

reference_available = pytest.mark.skipif(
    not REFERENCE.exists(), reason="shared reference config not present"
)


@reference_available
def test_reference_loads_with_defaults() -> None:
    c = load_config(REFERENCE, env={})
    assert c.mode == "production"
    assert (c.listen.host, c.listen.port) == ("127.0.0.1", 8080)
    assert c.state.backend == "memory"
    assert c.state.redis_url == "redis://127.0.0.1:6379/0"
    assert c.store.url == "sqlite:///./bff.db"
    assert c.store.kind == "sqlite" and c.store.sqlite_path == "./bff.db"
    assert c.admin.enabled and c.admin.path == "/admin" and c.admin.token is None
    jwt = c.auth.jwt
    assert jwt.secret is None and jwt.jwks_url is None and jwt.issuer is None
    assert jwt.audience == []
    assert jwt.algorithms == ["HS256", "RS256", "ES256"]
    assert jwt.leeway == 30 and jwt.max_token_bytes == 8192
    assert c.auth.api_keys.header == "X-API-Key"

    assert list(c.upstreams) == ["users", "orders", "products", "reviews", "users_next"]
    users = c.upstreams["users"]
    assert users.targets == [TargetConfig(url="http://127.0.0.1:9101", weight=1)]
    assert users.balance == "round_robin"
    assert (users.timeout.connect, users.timeout.read) == (1.0, 5.0)
    assert (users.timeout.write, users.timeout.pool) == (10.0, 1.0)  # defaults
    assert (users.retries.attempts, users.retries.backoff) == (2, 0.05)
    assert users.retries.budget_ratio == 0.2 and users.retries.max_backoff == 1.0
    assert users.breaker.failure_threshold == 5 and users.breaker.recovery_timeout == 10
    assert users.breaker.success_threshold == 2 and users.breaker.half_open_probes == 1
    assert users.passive_health.consecutive_failures == 5
    assert users.passive_health.ejection_time == 10
    assert users.health_check is not None
    assert users.health_check.path == "/health" and users.health_check.interval == 5
    assert users.health_check.unhealthy_threshold == 3
    assert users.health_check.healthy_threshold == 2
    assert users.health_check.effective_timeout == 1.0
    orders = c.upstreams["orders"]
    assert orders.health_check is None and orders.retries.attempts == 1
    assert orders.targets[0].url == "http://127.0.0.1:9102"

    rl = c.rate_limits
    assert list(rl.plans) == ["anonymous", "free", "pro", "enterprise"]
    assert rl.plans["anonymous"].per_minute == 60 and rl.plans["anonymous"].per_hour is None
    assert rl.plans["pro"].windows() == [(60.0, 600), (3600.0, 10000)]
    assert rl.algorithm == "token_bucket" and rl.trusted_proxies == [] and rl.fail_open

    gql = c.graphql
    assert gql.schema_modules == [
        "schema.users",
        "schema.orders",
        "schema.products",
        "schema.reviews",
    ]
    assert gql.cost_per_request == 50
    web, mobile, iot = gql.apps["web"], gql.apps["mobile"], gql.apps["iot"]
    assert (web.path, web.auth, web.max_depth, web.max_cost) == (
        "/graphql/web",
        "optional",
        10,
        10000,
    )
    assert web.graphiql and web.timeout == 10 and web.persisted_queries == "off"
    assert mobile.persisted_queries == "apq" and not mobile.graphiql and mobile.timeout == 30
    assert (iot.auth, iot.max_depth, iot.max_cost) == ("api_key", 4, 200)
    assert iot.persisted_queries == "only" and iot.encodings == ["json", "cbor"]
    assert web.encodings == ["json"]
    assert (web.max_aliases, web.max_root_fields, web.max_tokens) == (30, 20, 5000)
    assert not web.batching.enabled

    ids = [r.id for r in c.routes]
    assert ids == ["users", "products", "orders", "users-canary"]
    users_route, products_route, orders_route, canary = c.routes
    assert users_route.methods == ["GET", "HEAD"]  # GET implies HEAD
    assert users_route.strip_prefix == "/api" and users_route.upstream == "users"
    assert not users_route.auth.required
    assert users_route.cache is not None and users_route.cache.ttl == 30
    assert products_route.cache is not None and products_route.cache.stale_if_error == 300
    assert orders_route.auth.required and orders_route.auth.scopes == ["orders:read"]
    assert orders_route.rate_limit is not None and orders_route.rate_limit.per_minute == 120
    assert orders_route.timeout == 5 and users_route.timeout == 30
    assert orders_route.methods == ["GET", "HEAD", "POST"]
    assert canary.headers == {"x-canary": "true"} and canary.upstream == "users_next"
    assert canary.upstream_names == ["users_next"]

    assert c.limits.max_body_bytes == 1048576 and c.limits.max_header_bytes == 16384
    assert c.cors.allow_origins == ["http://localhost:3000"]
    assert c.observability.metrics.path == "/metrics" and c.observability.metrics.enabled
    assert c.observability.tracing.otlp_endpoint is None
    assert c.observability.tracing.sample_ratio == 0.1
    assert c.observability.access_log == "json"


@reference_available
def test_reference_with_env_overrides() -> None:
    env = {
        "BFF_STATE": "redis",
        "REDIS_URL": "redis://redis.internal:6380/2",
        "BFF_STORE_URL": "postgresql://bff:s3cret@db.internal:5432/bff",
        "BFF_ADMIN_TOKEN": "tok-123",
        "BFF_JWT_SECRET": "a-very-long-shared-secret-for-hs256",
        "BFF_JWKS_URL": "https://idp.example.com/.well-known/jwks.json",
        "BFF_JWT_ISSUER": "https://idp.example.com/",
        "BFF_JWT_AUDIENCE": "bff",
        "USERS_URL": "http://users-a:8000",
        "ORDERS_URL": "https://orders.svc:8443/base/",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
    }
    c = load_config(REFERENCE, env=env)
    assert c.state.backend == "redis" and c.state.redis_url == "redis://redis.internal:6380/2"
    assert c.store.kind == "postgresql" and c.store.sqlite_path is None
    assert c.admin.token == "tok-123"
    assert c.auth.jwt.secret == env["BFF_JWT_SECRET"]
    assert c.auth.jwt.jwks_url == "https://idp.example.com/.well-known/jwks.json"
    assert c.auth.jwt.issuer == "https://idp.example.com/"
    assert c.auth.jwt.audience == ["bff"]
    assert c.upstreams["users"].targets[0].url == "http://users-a:8000"
    assert c.upstreams["orders"].targets[0].url == "https://orders.svc:8443/base"  # no trailing /
    assert c.observability.tracing.otlp_endpoint == "http://otel:4318"
    text = c.summary()
    assert "s3cret" not in text and "tok-123" not in text and "***" in text


@reference_available
def test_reference_uses_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFF_ADMIN_TOKEN", "from-os-environ")
    assert load_config(REFERENCE).admin.token == "from-os-environ"


def test_demo_config_loads() -> None:
    c = load_config(DEMO, env={})
    assert c.mode == "development" and c.is_development
    assert c.state.backend == "memory"
    assert c.store.url == "sqlite:///./bff-demo.db"
    assert c.admin.token == "demo-admin-token"
    assert (
        c.auth.jwt.secret == "demo-secret-change-me-before-production"
        and c.auth.jwt.algorithms == ["HS256"]
    )
    assert [c.upstreams[n].targets[0].url for n in ("users", "orders", "products", "reviews")] == [
        "http://127.0.0.1:9101",
        "http://127.0.0.1:9102",
        "http://127.0.0.1:9103",
        "http://127.0.0.1:9104",
    ]
    assert {n: a.path for n, a in c.graphql.apps.items()} == {
        "web": "/graphql/web",
        "mobile": "/graphql/mobile",
        "iot": "/graphql/iot",
    }
    assert c.graphql.apps["web"].graphiql and c.graphql.apps["mobile"].graphiql
    assert [r.id for r in c.routes] == ["users", "products", "orders", "users-canary"]
    c2 = load_config(DEMO, env={"BFF_DEMO_DIR": "/tmp/demo", "BFF_ADMIN_TOKEN": "x"})
    assert c2.store.sqlite_path == "/tmp/demo/bff-demo.db" and c2.admin.token == "x"


# --------------------------------------------------------------------------------------------
# Minimal files and defaults
# --------------------------------------------------------------------------------------------


def test_empty_file_gives_defaults() -> None:
    for text in ("", "# only a comment\n", "---\n"):
        c = cfg(text)
        assert (c.listen.host, c.listen.port) == ("127.0.0.1", 8080)
        assert c.mode == "production" and not c.is_development
        assert c.state.backend == "memory" and c.store.url == "sqlite:///./bff.db"
        assert c.admin.enabled and c.admin.token is None
        assert c.upstreams == {} and c.routes == [] and c.graphql.apps == {}
        assert c.rate_limits.plans == {} and c.observability.access_log == "json"


def test_minimal_file() -> None:
    c = cfg(
        """
        upstreams:
          users: {targets: [http://127.0.0.1:9101]}
        routes:
          - {id: users, path: /api/users, upstream: users}
        """
    )
    route = c.routes[0]
    assert route.methods == ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    assert route.timeout == 30 and route.cache is None and route.split is None
    assert not route.auth.required and route.transforms.request.add == {}
    up = c.upstreams["users"]
    assert up.timeout.connect == 1.0 and up.timeout.read == 10.0
    assert up.retries.attempts == 1 and up.breaker.enabled
    assert up.pool.max_connections == 100 and up.pool.keepalive_expiry == 4.0


def test_bare_sections_and_blank_values_mean_unset() -> None:
    c = cfg(
        """
        listen:
        cors:
        admin: {token: "${TOKEN:-}", path: "${ADMIN_PATH:-}"}
        auth: {jwt: {secret: "", issuer: "${ISS:-}", audience: "${AUD:-}", jwks_url: ""}}
        observability: {tracing: {otlp_endpoint: ""}}
        """
    )
    assert c.listen.port == 8080 and c.cors.allow_origins == []
    assert c.admin.token is None and c.admin.path == "/admin"
    assert c.auth.jwt.secret is None and c.auth.jwt.issuer is None
    assert c.auth.jwt.jwks_url is None and c.auth.jwt.audience == []
    assert c.observability.tracing.otlp_endpoint is None


def test_full_route_and_upstream_keys() -> None:
    c = cfg(
        """
        mode: Development
        upstreams:
          v1:
            targets: [{url: "http://a:1", weight: 3}, "http://b:2/"]
            balance: weighted
            timeout: {connect: 0.5, read: 2, write: 3, pool: 0.1}
            pool: {max_connections: 10, max_keepalive_connections: 5, keepalive_expiry: 2}
            retries: {attempts: 0, backoff: 0, max_backoff: 0}
            breaker: {enabled: false}
            passive_health: {enabled: false}
            health_check: {path: /ready, interval: 0.2, timeout: 0.1}
          v2: {targets: ["http://c:3"]}
        routes:
          - id: split
            path: /api/things/
            methods: [get, post]
            hosts: ["API.example.com", "*.example.org"]
            headers: {X-Canary: "true"}
            split: [{upstream: v1, weight: 90}, {upstream: v2, weight: 10}]
            strip_prefix: /api
            timeout: 2.5
            max_body_bytes: 1024
            allow_encoded_slashes: true
            auth: {scopes: [things:read], forward_jwt: true}
            rate_limit: {per_second: 5, burst: 10}
            global_limit: {per_minute: 1000}
            cache: {ttl: 5, vary: [Accept-Language], private: true, authorized: true}
            transforms:
              request: {add: {X-From: bff}, remove: [Cookie], rename: {X-Old: X-New}}
              response: {remove: [Server]}
        graphql:
          apps:
            web:
              path: /graphql/web
              batching: {enabled: true, max_operations: 5}
              rate_limit: {per_minute: 100}
        rate_limits:
          plans: {anonymous: {per_minute: 10}, gold: {per_day: 100000}}
          algorithm: sliding_window
          trusted_proxies: [10.0.0.0/8, "192.168.1.1", "::1", "fd00::/8"]
          fail_open: false
          global_limit: {per_second: 1000}
        state: {backend: redis, redis_url: "redis://localhost:6379/0", redis_socket_timeout: 0.2}
        observability: {access_log: OFF, log_level: DEBUG, metrics: {enabled: false}}
        """
    )
    assert c.is_development
    v1 = c.upstreams["v1"]
    assert v1.targets == [
        TargetConfig(url="http://a:1", weight=3),
        TargetConfig(url="http://b:2", weight=1),
    ]
    assert v1.balance == "weighted" and v1.pool.max_keepalive_connections == 5
    assert v1.health_check is not None and v1.health_check.effective_timeout == 0.1
    route = c.routes[0]
    assert route.path == "/api/things" and route.methods == ["GET", "HEAD", "POST"]
    assert route.hosts == ["api.example.com", "*.example.org"]
    assert route.headers == {"x-canary": "true"}
    assert route.split is not None and [s.weight for s in route.split] == [90, 10]
    assert route.upstream_names == ["v1", "v2"]
    assert route.auth.required and route.auth.forward_jwt  # scopes imply required
    assert route.rate_limit is not None and route.rate_limit.burst == 10
    assert route.cache is not None and route.cache.vary == ["accept-language"]
    assert route.transforms.request.add == {"x-from": "bff"}
    assert route.transforms.request.rename == {"x-old": "x-new"}
    assert route.transforms.response.remove == ["server"]
    assert c.graphql.apps["web"].batching.max_operations == 5
    assert c.rate_limits.trusted_proxies == ["10.0.0.0/8", "192.168.1.1/32", "::1/128", "fd00::/8"]
    assert c.rate_limits.plans["gold"].windows() == [(86400.0, 100000)]
    assert c.observability.access_log == "off" and c.observability.log_level == "debug"


def test_yaml_bare_off_is_the_string_off() -> None:
    c = cfg(
        """
        graphql: {apps: {a: {path: /g, persisted_queries: off}}}
        observability: {access_log: off}
        """
    )
    assert c.graphql.apps["a"].persisted_queries == "off"
    assert c.observability.access_log == "off"


def test_models_are_frozen() -> None:
    c = cfg("")
    with pytest.raises(Exception, match="frozen"):
        c.listen.port = 1  # type: ignore[misc]


def test_programmatic_construction_runs_the_same_checks() -> None:
    with pytest.raises(Exception, match="unknown upstream"):
        GatewayConfig.model_validate({"routes": [{"id": "a", "path": "/a", "upstream": "nope"}]})
    route = RouteConfig(id="a", path="/a/", upstream="u")
    assert route.path == "/a"


# --------------------------------------------------------------------------------------------
# Environment expansion
# --------------------------------------------------------------------------------------------


def test_env_expansion_defaults_and_values() -> None:
    text = """
    listen: {host: "${HOST:-0.0.0.0}", port: "${PORT:-9000}"}
    admin: {enabled: "${ADMIN_ON:-false}", token: "pre-${T}-post"}
    """
    c = cfg(text, env={"T": "mid"})
    assert (c.listen.host, c.listen.port) == ("0.0.0.0", 9000)
    assert c.admin.enabled is False and c.admin.token == "pre-mid-post"
    c = cfg(text, env={"T": "x", "PORT": "7000", "HOST": "", "ADMIN_ON": "yes"})
    assert c.listen.port == 7000 and c.listen.host == "0.0.0.0"  # empty uses the default
    assert c.admin.enabled is True


def test_env_value_cannot_inject_structure() -> None:
    evil = "a: b\nc: d"
    c = cfg('auth: {jwt: {issuer: "${ISS}"}}\n', env={"ISS": evil})
    assert c.auth.jwt.issuer == evil
    c = cfg("listen:\n  host: ${H}\n", env={"H": "[1, 2]"})
    assert c.listen.host == "[1, 2]"
    msg = problem_at('listen: "${L}"\n', "listen", env={"L": "{host: x, port: 1}"})
    assert "must be a mapping" in msg


def test_env_escape() -> None:
    c = cfg('auth: {jwt: {issuer: "a$${B}c$$d$e"}}\n', env={"B": "no", "e": "no"})
    assert c.auth.jwt.issuer == "a${B}c$$d$e"


def test_env_in_key_is_literal_and_rejected_as_name() -> None:
    msg = problem_at(
        'upstreams: {"${N}": {targets: [http://a]}}\n', "upstreams.${N}", env={"N": "x"}
    )
    assert "invalid upstream name" in msg


def test_unset_variable_names_key_path_and_variable() -> None:
    found = problems(
        """
        admin: {token: "${ADMIN_TOKEN}"}
        upstreams:
          users: {targets: ["${USERS_URL}"]}
        """
    )
    assert ("admin.token", found[0][1]) in found
    assert "ADMIN_TOKEN" in dict(found)["admin.token"]
    assert "USERS_URL" in dict(found)["upstreams.users.targets[0]"]
    assert "not set" in found[0][1]


def test_bad_variable_reference() -> None:
    assert "invalid variable reference" in problem_at('admin: {token: "${1BAD}"}\n', "admin.token")
    assert "unterminated" in problem_at('admin: {token: "${OPEN"}\n', "admin.token")


def test_expand_env_function() -> None:
    data = {"a": ["${X:-1}", {"b": "${Y}"}], "c": 3}
    assert expand_env(data, {"Y": "y"}) == {"a": ["1", {"b": "y"}], "c": 3}
    with pytest.raises(ConfigError) as info:
        expand_env(data, {})
    assert info.value.problems[0][0] == "a[1].b"


# --------------------------------------------------------------------------------------------
# Rejections, each with its key path
# --------------------------------------------------------------------------------------------


def test_unknown_key_with_did_you_mean() -> None:
    msg = problem_at(
        """
        upstreams:
          users: {targets: [http://a], tiemout: {connect: 1}}
        """,
        "upstreams.users.tiemout",
    )
    assert msg == "unknown key 'tiemout' (did you mean 'timeout'?)"
    assert "did you mean 'upstreams'" in problem_at("upstream: {}\n", "upstream")
    assert "did you mean 'port'" in problem_at("listen: {prot: 1}\n", "listen.prot")
    msg = problem_at(
        with_routes("- {id: a, path: /a, upstream: users, cache: {ttl: 1, stale: 2}}"),
        "routes[0].cache.stale",
    )
    assert "unknown key 'stale'" in msg and "stale_if_error" in msg


def test_unknown_key_without_close_match_lists_allowed() -> None:
    msg = problem_at("listen: {zzz: 1}\n", "listen.zzz")
    assert "unknown key 'zzz'" in msg and "host" in msg and "port" in msg


def test_wrong_types() -> None:
    assert "must be an integer" in problem_at("listen: {port: abc}\n", "listen.port")
    assert "must be a mapping" in problem_at("listen: 8080\n", "listen")
    assert "must be a mapping" in problem_at("upstreams: [a, b]\n", "upstreams")
    assert "must be a list" in problem_at(
        "upstreams: {u: {targets: {url: http://a}}}\n", "upstreams.u.targets"
    )
    assert "must be true or false" in problem_at("admin: {enabled: maybe}\n", "admin.enabled")
    assert "must be a number" in problem_at(
        "upstreams: {u: {targets: [http://a], timeout: {read: 5s}}}\n", "upstreams.u.timeout.read"
    )
    msg = problem_at(
        with_routes("- {id: a, path: /a, upstream: users, headers: {x-canary: true}}"),
        "routes[0].headers.x-canary",
    )
    assert "must be a string" in msg and 'quote it: "true"' in msg


def test_missing_required_keys() -> None:
    assert problem_at("upstreams: {u: {}}\n", "upstreams.u.targets") == "is required"
    assert problem_at(with_routes("- {path: /a, upstream: users}"), "routes[0].id") == "is required"


def test_route_to_unknown_upstream() -> None:
    found = dict(
        problems(
            with_routes(
                """
                - {id: a, path: /a, upstream: users}
                - {id: b, path: /b, upstream: user}
                - {id: c, path: /c, upstream: x}
                """
            )
        )
    )
    assert found["routes[2].upstream"] == "unknown upstream 'x' (known: users, orders)"
    assert "did you mean 'users'?" in found["routes[1].upstream"]


def test_split_to_unknown_upstream() -> None:
    msg = problem_at(
        with_routes("- {id: a, path: /a, split: [{upstream: users}, {upstream: nope}]}"),
        "routes[0].split[1].upstream",
    )
    assert msg.startswith("unknown upstream 'nope'")


def test_route_without_upstreams_defined() -> None:
    msg = problem_at("routes: [{id: a, path: /a, upstream: x}]\n", "routes[0].upstream")
    assert "no upstreams are defined" in msg


def test_upstream_and_split_both_or_neither() -> None:
    msg = problem_at(
        with_routes("- {id: a, path: /a, upstream: users, split: [{upstream: orders}]}"),
        "routes[0].split",
    )
    assert "not both" in msg
    assert "is required" in problem_at(with_routes("- {id: a, path: /a}"), "routes[0].upstream")


def test_split_checks() -> None:
    assert "at least one weight" in problem_at(
        with_routes("- {id: a, path: /a, split: [{upstream: users, weight: 0}]}"),
        "routes[0].split",
    )
    assert "listed twice" in problem_at(
        with_routes("- {id: a, path: /a, split: [{upstream: users}, {upstream: users}]}"),
        "routes[0].split[1].upstream",
    )


def test_duplicate_route_ids() -> None:
    msg = problem_at(
        with_routes(
            """
            - {id: users, path: /a, upstream: users}
            - {id: b, path: /b, upstream: users}
            - {id: c, path: /c, upstream: users}
            - {id: users, path: /d, upstream: users}
            """
        ),
        "routes[3].id",
    )
    assert msg == "duplicate route id 'users' (also routes[0])"


def test_route_paths() -> None:
    assert "must start with '/'" in problem_at(
        with_routes("- {id: a, path: api/users, upstream: users}"), "routes[0].path"
    )
    assert "'..'" in problem_at(
        with_routes("- {id: a, path: /api/../x, upstream: users}"), "routes[0].path"
    )
    assert "not a prefix" in problem_at(
        with_routes("- {id: a, path: /api/users, strip_prefix: /v1, upstream: users}"),
        "routes[0].strip_prefix",
    )
    # A segment-wise prefix only: /api/us is not a prefix of /api/users.
    assert "not a prefix" in problem_at(
        with_routes("- {id: a, path: /api/users, strip_prefix: /api/us, upstream: users}"),
        "routes[0].strip_prefix",
    )
    assert "invalid route id" in problem_at(
        with_routes("- {id: 'a b', path: /a, upstream: users}"), "routes[0].id"
    )


def test_shadowed_route() -> None:
    msg = problem_at(
        with_routes(
            """
            - {id: a, path: /a, upstream: users}
            - {id: b, path: /a/, upstream: orders, methods: [GET]}
            """
        ),
        "routes[1].path",
    )
    assert "never match" in msg and "routes[0]" in msg
    # A header matcher or disjoint methods make it reachable.
    cfg(
        with_routes(
            """
            - {id: a, path: /a, upstream: users, methods: [GET]}
            - {id: b, path: /a, upstream: orders, methods: [POST]}
            - {id: c, path: /a, upstream: orders, headers: {x-canary: "1"}}
            """
        )
    )


def test_path_collisions() -> None:
    text = (
        UPSTREAMS
        + """
graphql:
  apps:
    web: {path: /graphql/web}
    web2: {path: /graphql/web/}
    root: {path: /graphql}
    m: {path: /metrics}
    adm: {path: /admin/graphql}
routes:
  - {id: a, path: /graphql/web/x, upstream: users}
  - {id: b, path: /admin/keys, upstream: users}
  - {id: c, path: /metrics, upstream: users}
  - {id: d, path: /healthz, upstream: users}
  - {id: e, path: /, upstream: users}
"""
    )
    found = dict(problems(text))
    assert "already used by graphql.apps.web" in found["graphql.apps.web2.path"]
    assert "overlaps" in found["graphql.apps.root.path"]
    assert "metrics endpoint" in found["graphql.apps.m.path"]
    assert "admin path" in found["graphql.apps.adm.path"]
    assert "graphql.apps.web" in found["routes[0].path"]
    assert "admin path" in found["routes[1].path"]
    assert "metrics endpoint" in found["routes[2].path"]
    assert "health" in found["routes[3].path"]
    assert "routes[4].path" not in found  # a catch-all route is fine
    assert "admin path" in problem_at(
        "observability: {metrics: {path: /admin/metrics}}\n", "observability.metrics.path"
    )
    # With admin disabled, its path is free.
    cfg(UPSTREAMS + "admin: {enabled: false}\nroutes: [{id: a, path: /admin, upstream: users}]\n")


def test_bad_target_urls() -> None:
    found = dict(
        problems(
            """
            upstreams:
              u:
                targets:
                  - ftp://a
                  - "http://"
                  - {url: "http://h/x?y=1"}
                  - "http://a:99999"
                  - "http://user:pw@h"
                  - "not a url"
            """
        )
    )
    assert "http:// or https://" in found["upstreams.u.targets[0]"]
    assert "no host" in found["upstreams.u.targets[1]"]
    assert "query string" in found["upstreams.u.targets[2].url"]
    assert "invalid URL" in found["upstreams.u.targets[3]"]
    assert "credentials" in found["upstreams.u.targets[4]"]
    assert "upstreams.u.targets[5]" in found


def test_target_list_checks() -> None:
    assert (
        problem_at("upstreams: {u: {targets: []}}\n", "upstreams.u.targets") == "must not be empty"
    )
    assert "duplicate target" in problem_at(
        "upstreams: {u: {targets: [http://a, 'http://a/']}}\n", "upstreams.u.targets[1]"
    )
    assert "weight above 0" in problem_at(
        "upstreams: {u: {targets: [{url: http://a, weight: 0}]}}\n", "upstreams.u.targets"
    )
    assert "invalid upstream name" in problem_at(
        "upstreams: {'a b': {targets: [http://a]}}\n", "upstreams.a b"
    )


def test_negative_and_zero_durations() -> None:
    text = "upstreams: {u: {targets: [http://a], timeout: {connect: -1, read: 0}}}\n"
    found = dict(problems(text))
    assert found["upstreams.u.timeout.connect"] == "must be greater than 0 (got -1)"
    assert found["upstreams.u.timeout.read"] == "must be greater than 0 (got 0)"
    assert "greater than 0" in problem_at(
        "graphql: {apps: {web: {path: /g, timeout: -5}}}\n", "graphql.apps.web.timeout"
    )
    assert "greater than 0" in problem_at(
        "graphql: {apps: {web: {path: /g, max_depth: 0}}}\n", "graphql.apps.web.max_depth"
    )
    assert "at most 1" in problem_at(
        "upstreams: {u: {targets: [http://a], retries: {budget_ratio: 2}}}\n",
        "upstreams.u.retries.budget_ratio",
    )
    assert "must be at least 1" in problem_at("listen: {port: 0}\n", "listen.port")


def test_cross_field_upstream_checks() -> None:
    base = "upstreams: {u: {targets: [http://a], %s}}\n"
    assert "max_connections" in problem_at(
        base % "pool: {max_connections: 2, max_keepalive_connections: 5}",
        "upstreams.u.pool.max_keepalive_connections",
    )
    assert "backoff" in problem_at(
        base % "retries: {backoff: 2, max_backoff: 1}", "upstreams.u.retries.max_backoff"
    )
    assert "interval" in problem_at(
        base % "health_check: {interval: 1, timeout: 2}", "upstreams.u.health_check.timeout"
    )


def test_unknown_enum_value_lists_allowed() -> None:
    msg = problem_at(
        "upstreams: {u: {targets: [http://a], balance: random}}\n", "upstreams.u.balance"
    )
    for allowed in ("round_robin", "least_requests", "ip_hash", "weighted", "random"):
        assert allowed in msg
    assert "apq" in problem_at(
        "graphql: {apps: {web: {path: /g, persisted_queries: yes please}}}\n",
        "graphql.apps.web.persisted_queries",
    )
    assert "memory" in problem_at("state: {backend: etcd}\n", "state.backend")
    assert "production" in problem_at("mode: staging\n", "mode")
    assert "'GET'" in problem_at(
        with_routes("- {id: a, path: /a, upstream: users, methods: [FETCH]}"),
        "routes[0].methods[0]",
    )
    assert "'cbor'" in problem_at(
        "graphql: {apps: {web: {path: /g, encodings: [xml]}}}\n", "graphql.apps.web.encodings[0]"
    )
    assert "'HS256'" in problem_at("auth: {jwt: {algorithms: [none]}}\n", "auth.jwt.algorithms[0]")


def test_invalid_cidrs() -> None:
    found = dict(problems("rate_limits: {trusted_proxies: [10.0.0.0/8, 10.0.0.1/8, nope]}\n"))
    assert "did you mean 10.0.0.0/8" in found["rate_limits.trusted_proxies[1]"]
    assert found["rate_limits.trusted_proxies[2]"] == "invalid CIDR 'nope'"
    assert "rate_limits.trusted_proxies[0]" not in found


def test_redis_backend_needs_valid_url() -> None:
    assert "required" in problem_at("state: {backend: redis}\n", "state.redis_url")
    assert "redis://" in problem_at(
        "state: {backend: redis, redis_url: 'http://x'}\n", "state.redis_url"
    )
    assert "no host" in problem_at(
        "state: {backend: redis, redis_url: 'redis://'}\n", "state.redis_url"
    )
    cfg("state: {backend: redis, redis_url: 'rediss://:pw@cache:6380/1'}\n")
    cfg("state: {backend: memory, redis_url: 'anything'}\n")  # unused: not checked


def test_store_urls() -> None:
    assert "unsupported store" in problem_at("store: {url: 'mysql://x'}\n", "store.url")
    assert "sqlite:///" in problem_at("store: {url: 'sqlite://bff.db'}\n", "store.url")
    assert cfg("store: {url: 'sqlite:////var/lib/bff.db'}\n").store.sqlite_path == "/var/lib/bff.db"
    assert cfg("store: {url: 'postgresql://u@h/db'}\n").store.kind == "postgresql"


def test_rate_limit_plans() -> None:
    assert "'anonymous' plan is required" in problem_at(
        "rate_limits: {plans: {free: {per_minute: 1}}}\n", "rate_limits.plans"
    )
    assert "at least one of" in problem_at(
        "rate_limits: {plans: {anonymous: {burst: 5}}}\n", "rate_limits.plans.anonymous"
    )
    assert "at least one of" in problem_at(
        with_routes("- {id: a, path: /a, upstream: users, rate_limit: {}}"),
        "routes[0].rate_limit",
    )
    assert "greater than 0" in problem_at(
        "rate_limits: {plans: {anonymous: {per_minute: 0}}}\n",
        "rate_limits.plans.anonymous.per_minute",
    )


def test_auth_checks() -> None:
    assert "scopes" in problem_at(
        with_routes("- {id: a, path: /a, upstream: users, auth: {required: false, scopes: [x]}}"),
        "routes[0].auth.required",
    )
    assert "no HS" in problem_at(
        "auth: {jwt: {secret: s, algorithms: [RS256]}}\n", "auth.jwt.secret"
    )
    assert "only HS" in problem_at(
        "auth: {jwt: {jwks_url: 'https://idp/jwks', algorithms: [HS256]}}\n", "auth.jwt.jwks_url"
    )
    assert "http" in problem_at("auth: {jwt: {jwks_url: 'idp/jwks'}}\n", "auth.jwt.jwks_url")
    assert "invalid header name" in problem_at(
        "auth: {api_keys: {header: 'X API Key'}}\n", "auth.api_keys.header"
    )


def test_header_and_host_checks() -> None:
    assert "invalid header name" in problem_at(
        with_routes(
            "- {id: a, path: /a, upstream: users, transforms: {request: {add: {'bad name': x}}}}"
        ),
        "routes[0].transforms.request.add",
    )
    assert "CR, LF" in problem_at(
        with_routes(
            '- {id: a, path: /a, upstream: users, transforms: {response: {add: {x-a: "a\\r\\nb"}}}}'
        ),
        "routes[0].transforms.response.add",
    )
    assert "invalid host" in problem_at(
        with_routes("- {id: a, path: /a, upstream: users, hosts: ['exa mple.com']}"),
        "routes[0].hosts[0]",
    )
    assert "GET" in problem_at(
        with_routes("- {id: a, path: /a, upstream: users, methods: [POST], cache: {ttl: 1}}"),
        "routes[0].cache",
    )


def test_cors_checks() -> None:
    found = dict(problems("cors: {allow_origins: ['http://x/y', 'localhost:3000']}\n"))
    assert "path" in found["cors.allow_origins[0]"]
    assert "http" in found["cors.allow_origins[1]"]
    assert "browsers" in problem_at(
        "cors: {allow_origins: ['*'], allow_credentials: true}\n", "cors.allow_credentials"
    )


def test_graphql_checks() -> None:
    assert "not a Python module" in problem_at(
        "graphql: {schema_modules: [schema.users, 'schema/orders']}\n", "graphql.schema_modules[1]"
    )
    assert "is required" in problem_at("graphql: {apps: {web: {}}}\n", "graphql.apps.web.path")
    assert "invalid app name" in problem_at(
        "graphql: {apps: {'w e b': {path: /g}}}\n", "graphql.apps.w e b"
    )


def test_all_problems_reported_at_once() -> None:
    found = problems(
        """
        listen: {port: -1, hots: x}
        upstreams: {u: {targets: [], balance: random}}
        """
    )
    paths = {p for p, _ in found}
    assert {"listen.port", "listen.hots", "upstreams.u.targets", "upstreams.u.balance"} <= paths


# --------------------------------------------------------------------------------------------
# YAML and file errors
# --------------------------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("listen:\n  host: x\n  port: [1,\n", source="gw.yaml", env={})
    [(path, msg)] = info.value.problems
    assert path == "" and "YAML syntax error at line" in msg and "column" in msg
    assert info.value.source == "gw.yaml" and "gw.yaml" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config("listen:\n  host: x\n\tport: 1\n", env={})
    assert "line 3" in info.value.problems[0][1]


def test_duplicate_yaml_keys_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("upstreams:\n  u: {targets: [http://a]}\n  u: {targets: [http://b]}\n")
    msg = info.value.problems[0][1]
    assert "duplicate key 'u'" in msg and "line 3" in msg


def test_top_level_must_be_a_mapping() -> None:
    for text in ("- a\n- b\n", "just a string\n", "42\n"):
        with pytest.raises(ConfigError) as info:
            parse_config(text, env={})
        assert "must be a mapping" in info.value.problems[0][1]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "file not found" in info.value.problems[0][1]
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("listen: {port: 9999}\nupstreams: {u: {targets: [http://a]}}\n")
    assert load_config(str(path)).listen.port == 9999
    path.write_text("listen: {port: nope}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: invalid configuration")
    assert "listen.port: must be an integer" in str(info.value)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    lines.append("listen: *a7")
    with pytest.raises(ConfigError) as info:
        parse_config("\n".join(lines), env={})
    assert "too large" in info.value.problems[0][1]


# --------------------------------------------------------------------------------------------
# JSON schema and summary
# --------------------------------------------------------------------------------------------


def test_json_schema_export() -> None:
    schema = config_json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "mode",
        "listen",
        "state",
        "store",
        "admin",
        "auth",
        "upstreams",
        "rate_limits",
        "graphql",
        "routes",
        "limits",
        "compression",
        "cors",
        "observability",
    }
    defs = schema["$defs"]
    assert defs["UpstreamConfig"]["description"].startswith("A REST service")
    assert defs["RouteConfig"]["additionalProperties"] is False
    # A target may be a plain URL string; numbers accept ${VAR} references.
    targets = defs["UpstreamConfig"]["properties"]["targets"]["items"]["anyOf"]
    assert {"type": "string"} in targets
    port = defs["ListenConfig"]["properties"]["port"]
    assert any(alt.get("type") == "string" and "pattern" in alt for alt in port["anyOf"])
    assert port["default"] == 8080 and port["description"]


@reference_available
def test_json_schema_accepts_the_reference() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = config_json_schema()
    for path in (REFERENCE, DEMO):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"listen": {"prot": 1}}, schema)


def test_summary() -> None:
    c = load_config(DEMO, env={})
    text = summarize(c)
    assert text == c.summary()
    assert "127.0.0.1:8080" in text and "memory" in text
    assert "upstreams (5): users" in text and "routes (4)" in text
    assert "web at /graphql/web" in text and "admin: on at /admin" in text
    assert "demo-admin-token" not in text and "demo-secret" not in text
    assert "admin: off" in cfg("admin: {enabled: false}\n").summary()
    assert "no token" in cfg("").summary()


def test_docs_examples_load() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    if not doc.exists():
        pytest.skip("docs/configuration.md not present")
    blocks = doc.read_text().split("```yaml\n")[1:]
    assert len(blocks) >= 3
    for block in blocks:
        parse_config(block.split("```", 1)[0], source=str(doc), env={})


def test_retry_budget_floor_and_route_timeouts() -> None:
    c = cfg(
        UPSTREAMS.replace(
            '{targets: ["http://127.0.0.1:9101"]}',
            '{targets: ["http://127.0.0.1:9101"], retries: {budget_min_retries: 0}}',
        )
        + "routes:\n  - {id: u, path: /u, upstream: users, connect_timeout: 0.5, read_timeout: 2}\n"
    )
    assert c.upstreams["users"].retries.budget_min_retries == 0
    assert c.upstreams["orders"].retries.budget_min_retries == 10
    assert (c.routes[0].connect_timeout, c.routes[0].read_timeout) == (0.5, 2.0)
    assert cfg(with_routes("- {id: u, path: /u, upstream: users}")).routes[0].read_timeout is None
    msg = problem_at(
        with_routes("- {id: u, path: /u, upstream: users, read_timeout: 0}"),
        "routes[0].read_timeout",
    )
    assert "greater than 0" in msg
    msg = problem_at(
        UPSTREAMS.replace(
            '{targets: ["http://127.0.0.1:9101"]}',
            '{targets: ["http://127.0.0.1:9101"], retries: {budget_min_retries: -1}}',
        ),
        "upstreams.users.retries.budget_min_retries",
    )
    assert "at least 0" in msg
