"""Typed configuration: the gateway's YAML file as pydantic models.

One YAML file configures everything (see ``docs/configuration.md``). Loading it takes three steps:

1. the text is parsed as YAML (``safe_load``; duplicate keys are an error);
2. ``${NAME}`` and ``${NAME:-default}`` are expanded in **string values only**, after parsing, so an
   environment variable can never change the file's structure (``$${`` is a literal ``${``);
3. the result is validated by the models below, then checked as a whole (routes name known
   upstreams, ids are unique, paths do not collide, ...).

Every failure is reported as a :class:`bff.errors.ConfigError` whose ``problems`` are
``(key path, plain message)`` pairs, for example
``("routes[2].upstream", "unknown upstream 'x' (known: users, orders)")``.

An empty string (what ``${NAME:-}`` gives when the variable is unset) or a bare ``key:`` (null)
means "unset" for any key that has a default: the default applies (``None`` for optional keys).
"""

from __future__ import annotations

__all__ = [
    "AdminConfig",
    "ApiKeysConfig",
    "AuthConfig",
    "BatchingConfig",
    "BreakerConfig",
    "CompressionConfig",
    "CorsConfig",
    "GatewayConfig",
    "GraphQLAppConfig",
    "GraphQLConfig",
    "HeaderTransformConfig",
    "HealthCheckConfig",
    "JWTConfig",
    "LimitsConfig",
    "ListenConfig",
    "MetricsConfig",
    "ObservabilityConfig",
    "PassiveHealthConfig",
    "PlanConfig",
    "PoolConfig",
    "RateLimitsConfig",
    "RetryConfig",
    "RouteAuthConfig",
    "RouteCacheConfig",
    "RouteConfig",
    "SplitConfig",
    "StateConfig",
    "StoreConfig",
    "TargetConfig",
    "TimeoutConfig",
    "TracingConfig",
    "TransformsConfig",
    "UpstreamConfig",
    "check_routes",
    "config_json_schema",
    "expand_env",
    "load_config",
    "parse_config",
    "summarize",
]

import copy
import difflib
import ipaddress
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bff.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Constrained scalar types
# --------------------------------------------------------------------------------------------

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A duration in seconds, greater than 0."""
NonNegSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A duration in seconds, 0 or more."""
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]

Mode = Literal["development", "production"]
Balance = Literal["round_robin", "least_requests", "ip_hash", "weighted"]
AppAuth = Literal["optional", "required", "api_key"]
PersistedQueries = Literal["off", "apq", "only"]
Encoding = Literal["json", "cbor"]
Algorithm = Literal["token_bucket", "sliding_window"]
AccessLog = Literal["json", "text", "off"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
JwtAlgorithm = Literal[
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]

ALL_METHODS: tuple[HttpMethod, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
RESERVED_PATHS: tuple[str, ...] = ("/healthz", "/readyz")
"""Paths the gateway always serves itself (liveness and readiness)."""


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["HS256", "RS256", "ES256"]


def _default_encodings() -> list[Encoding]:
    return ["json"]


def _default_methods() -> list[HttpMethod]:
    return list(ALL_METHODS)


_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_NODES = 1_000_000


# --------------------------------------------------------------------------------------------
# Validation helpers (raise ValueError with a plain message; the key path is added later)
# --------------------------------------------------------------------------------------------


def _problems(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """An error carrying several ``(relative key path, message)`` problems at once."""
    detail = "; ".join(f"{p}: {m}" if p else m for p, m in problems)
    return PydanticCustomError("bff_problems", "{detail}", {"detail": detail, "problems": problems})


def _join(base: str, rel: str) -> str:
    if not rel:
        return base
    if not base:
        return rel
    return base + rel if rel.startswith("[") else f"{base}.{rel}"


def _check_name(value: str, what: str) -> str | None:
    if not _NAME_RE.match(value):
        return f"invalid {what} name {value!r}: use letters, digits, '_', '.' and '-' only"
    return None


def _norm_path(value: str) -> str:
    """Validate a URL path used for matching or mounting; strip a trailing slash."""
    if not value.startswith("/"):
        raise ValueError(f"must start with '/' (got {value!r})")
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "?#%\\" for ch in value):
        raise ValueError(
            f"must be a plain path: no spaces, '?', '#', '%' or backslashes (got {value!r})"
        )
    if "//" in value:
        raise ValueError(f"must not contain '//' (got {value!r})")
    if any(seg in (".", "..") for seg in value.split("/")):
        raise ValueError(f"must not contain '.' or '..' segments (got {value!r})")
    return value.rstrip("/") or "/"


def _under(path: str, prefix: str) -> bool:
    """True when ``path`` equals ``prefix`` or lies below it (segment-wise)."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME_RE.match(name):
        raise ValueError(f"invalid header name {name!r}")
    return name.lower()


def _check_header_value(value: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("header values must not contain CR, LF or NUL")
    return value


def _http_url(value: str, *, allow_path: bool = True) -> str:
    """Validate an http(s) URL with a host; return it without a trailing slash."""
    try:
        parts: SplitResult = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL {value!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
    if not parts.hostname:
        raise ValueError(f"URL has no host (got {value!r})")
    if parts.username is not None or parts.password is not None:
        raise ValueError("URL must not contain credentials")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(f"URL must not have a query string or fragment (got {value!r})")
    if port == 0:
        raise ValueError(f"URL port must not be 0 (got {value!r})")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"URL must not contain spaces (got {value!r})")
    path = parts.path.rstrip("/")
    if path and not allow_path:
        raise ValueError(f"URL must not have a path (got {value!r})")
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def _redact_url(url: str) -> str:
    """Hide the password of a URL (for summaries and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<invalid url>"


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _string_or_list_schema(schema: dict[str, Any]) -> None:
    """JSON schema of a list field that also accepts one string."""
    schema.pop("type", None)
    schema.pop("items", None)
    schema["anyOf"] = [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]


def _string_or_item_schema(schema: dict[str, Any]) -> None:
    """JSON schema of a list whose items may also be written as a plain string (a URL)."""
    schema["items"] = {"anyOf": [{"type": "string"}, schema["items"]]}


def _as_list(value: Any) -> Any:
    """A single scalar stands for a one-item list."""
    return [value] if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# Base model
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        str_strip_whitespace=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, data: Any) -> Any:
        # "" (from ${X:-}) and null mean "unset" for every key that has a default.
        if isinstance(data, dict):
            fields = cls.model_fields
            return {
                k: v
                for k, v in data.items()
                if not (
                    (v is None or (isinstance(v, str) and not v.strip()))
                    and k in fields
                    and not fields[k].is_required()
                )
            }
        return data


# --------------------------------------------------------------------------------------------
# listen, mode, state, store, admin
# --------------------------------------------------------------------------------------------


class ListenConfig(_Model):
    """Where the gateway accepts HTTP connections."""

    host: str = Field(
        default="127.0.0.1", min_length=1, description="Interface to bind (0.0.0.0: all)."
    )
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port.")
    drain_timeout: Seconds = Field(
        default=10.0,
        description="On shutdown, how long in-flight requests may take to finish (seconds).",
    )


class StateConfig(_Model):
    """Where shared runtime state lives: rate-limit counters, response cache, persisted queries.

    ``memory`` is right for one process; ``redis`` shares the state between workers and nodes.
    """

    backend: Literal["memory", "redis"] = Field(default="memory", description="memory | redis.")
    redis_url: str | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL; required when backend is redis.",
    )
    redis_connect_timeout: Seconds = Field(
        default=0.5, description="Redis connect timeout (seconds)."
    )
    redis_socket_timeout: Seconds = Field(
        default=0.5,
        description="Redis per-command timeout (seconds); past it, fail_open applies.",
    )
    key_prefix: str = Field(
        default="bff:", description="Prefix of every Redis key the gateway writes."
    )
    cache_max_bytes: PositiveInt = Field(
        default=64 * 1024 * 1024,
        description="Memory backend: size bound of the response cache (bytes).",
    )
    ratelimit_max_keys: PositiveInt = Field(
        default=100_000,
        description="Memory backend: most rate-limit keys kept (idle keys expire sooner).",
    )

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateConfig:
        if self.backend != "redis":
            return self
        if not self.redis_url:
            raise _problems([("redis_url", "is required when state.backend is redis")])
        try:
            parts = urlsplit(self.redis_url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise _problems([("redis_url", f"invalid URL: {exc}")]) from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise _problems(
                [
                    (
                        "redis_url",
                        "must be a redis://, rediss:// or unix:// URL "
                        f"(got {_redact_url(self.redis_url)!r})",
                    )
                ]
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise _problems([("redis_url", "URL has no host")])
        return self


class StoreConfig(_Model):
    """Persistent storage for API keys and admin-managed routes (SQLite or PostgreSQL)."""

    url: str = Field(
        default="sqlite:///./bff.db",
        description="sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://...",
    )
    poll_interval: Seconds = Field(
        default=1.0,
        description="Without Redis, how often each process polls the store for route changes.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError(f"must be a sqlite:/// or postgresql:// URL (got {value!r})")
        base = scheme.lower().split("+", 1)[0]
        if base == "sqlite":
            if not rest.startswith("/") or len(rest) < 2:
                raise ValueError(
                    "a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db "
                    f"(got {value!r})"
                )
        elif base in ("postgresql", "postgres"):
            if not rest:
                raise ValueError(f"PostgreSQL URL is incomplete (got {_redact_url(value)!r})")
        else:
            raise ValueError(
                f"unsupported store {scheme!r}: use sqlite:///... or postgresql://... "
                f"(got {_redact_url(value)!r})"
            )
        return value

    @property
    def kind(self) -> Literal["sqlite", "postgresql"]:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.url.lower().startswith("sqlite") else "postgresql"

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite database file (``:memory:`` possible), or None for PostgreSQL."""
        if self.kind != "sqlite":
            return None
        return self.url.partition("://")[2][1:]


class AdminConfig(_Model):
    """The admin API (routes, API keys, upstream state, metrics) under a bearer token."""

    enabled: bool = Field(default=True, description="Serve the admin API.")
    path: str = Field(default="/admin", description="Mount path of the admin API and admin page.")
    token: str | None = Field(
        default=None,
        description="Bearer token for the admin API. Unset or empty: admin paths answer 404.",
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        value = _norm_path(value)
        if value == "/":
            raise ValueError("must not be '/' (the admin API needs its own prefix)")
        return value

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: str | None) -> str | None:
        if value is not None and any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise ValueError("must not contain spaces or control characters")
        return value


# --------------------------------------------------------------------------------------------
# auth
# --------------------------------------------------------------------------------------------


class JWTConfig(_Model):
    """Bearer JWT verification: a shared secret (HS*) and/or a JWKS URL (RS*/ES*/PS*/EdDSA)."""

    secret: str | None = Field(default=None, description="Shared secret for HS256/384/512 tokens.")
    jwks_url: str | None = Field(
        default=None,
        description="JWKS endpoint for asymmetric keys (cached; refreshed on an unknown kid).",
    )
    algorithms: list[JwtAlgorithm] = Field(
        default_factory=_default_algorithms,
        min_length=1,
        description=(
            "Accepted algorithms ('none' never is). Only those with a configured key are "
            "usable: HS* need secret, the others jwks_url."
        ),
    )
    issuer: str | None = Field(default=None, description="Required 'iss' claim, if set.")
    audience: list[str] = Field(
        default_factory=list,
        description="Accepted 'aud' values (a string or a list); empty: 'aud' is not checked.",
        json_schema_extra=lambda schema: _string_or_list_schema(schema),
    )
    leeway: NonNegSeconds = Field(
        default=30.0, description="Clock skew allowed on exp/nbf/iat (seconds)."
    )
    max_token_bytes: PositiveInt = Field(
        default=8192, description="Longer tokens are refused unread."
    )
    jwks_cache_ttl: Seconds = Field(
        default=300.0, description="How long fetched JWKS keys are trusted."
    )
    jwks_min_refresh_interval: NonNegSeconds = Field(
        default=30.0,
        description="At most one JWKS refetch per this many seconds (unknown-kid floods).",
    )
    tier_claim: str = Field(
        default="tier", min_length=1, description="Claim naming the caller's tier."
    )
    default_tier: str = Field(
        default="free", min_length=1, description="Tier when the claim is absent."
    )

    @field_validator("audience", mode="before")
    @classmethod
    def _audience_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("jwks_url")
    @classmethod
    def _check_jwks(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _keys_match_algorithms(self) -> JWTConfig:
        problems: list[tuple[str, str]] = []
        has_hs = any(a.startswith("HS") for a in self.algorithms)
        has_asym = any(not a.startswith("HS") for a in self.algorithms)
        if self.secret is not None and not has_hs:
            problems.append(("secret", "is set but algorithms lists no HS* algorithm"))
        if self.jwks_url is not None and not has_asym:
            problems.append(("jwks_url", "is set but algorithms lists only HS* algorithms"))
        if problems:
            raise _problems(problems)
        return self


class ApiKeysConfig(_Model):
    """API keys (created through the admin API or ``bff keys``; stored hashed)."""

    header: str = Field(default="X-API-Key", description="Request header carrying the key.")
    cache_ttl: NonNegSeconds = Field(
        default=2.0,
        description="How long a key lookup is cached per process (revocation delay without Redis).",
    )

    @field_validator("header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        _check_header_name(value)
        return value


class AuthConfig(_Model):
    """Authentication shared by the GraphQL apps and the passthrough routes."""

    jwt: JWTConfig = Field(default_factory=JWTConfig, description="Bearer JWTs.")
    api_keys: ApiKeysConfig = Field(default_factory=ApiKeysConfig, description="API keys.")


# --------------------------------------------------------------------------------------------
# upstreams
# --------------------------------------------------------------------------------------------


class TargetConfig(_Model):
    """One instance of an upstream service. A plain URL string is shorthand for ``{url: ...}``."""

    url: str = Field(
        description="http(s)://host[:port][/base/path]; the request path is appended to it."
    )
    weight: NonNegInt = Field(
        default=1, description="Share for balance: weighted (0 drains the target)."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class TimeoutConfig(_Model):
    """Per-attempt timeouts of an upstream's HTTP client (seconds)."""

    connect: Seconds = Field(default=1.0, description="Establishing a connection.")
    read: Seconds = Field(default=10.0, description="Waiting for each chunk of the response.")
    write: Seconds = Field(default=10.0, description="Sending each chunk of the request.")
    pool: Seconds = Field(default=1.0, description="Waiting for a free connection from the pool.")


class PoolConfig(_Model):
    """Connection pool of an upstream's HTTP client."""

    max_connections: PositiveInt = Field(default=100, description="Most concurrent connections.")
    max_keepalive_connections: NonNegInt = Field(
        default=100, description="Most idle connections kept open."
    )
    keepalive_expiry: NonNegSeconds = Field(
        default=4.0,
        description="Idle connections are closed after this long; keep it below the upstream's "
        "own keep-alive timeout (uvicorn: 5 s) to avoid reusing a connection it is closing.",
    )

    @model_validator(mode="after")
    def _keepalive_within_max(self) -> PoolConfig:
        if self.max_keepalive_connections > self.max_connections:
            raise _problems([("max_keepalive_connections", "must not exceed max_connections")])
        return self


class RetryConfig(_Model):
    """Retries of idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE) on connect errors,
    timeouts and 502/503/504, with exponential backoff, full jitter and a retry budget."""

    attempts: NonNegInt = Field(
        default=1,
        description="Retries after the first try (2 = up to 3 tries); 0 disables retries.",
    )
    backoff: NonNegSeconds = Field(default=0.05, description="Base delay before the first retry.")
    max_backoff: NonNegSeconds = Field(default=1.0, description="Cap on the delay between retries.")
    budget_ratio: float = Field(
        default=0.2,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Retries may add at most this fraction of the upstream's recent requests "
        "(the last 10 seconds).",
    )
    budget_min_retries: NonNegInt = Field(
        default=10,
        description="Retries allowed per 10 seconds whatever the traffic, so an upstream with "
        "few requests can still retry.",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> RetryConfig:
        if self.max_backoff < self.backoff:
            raise _problems([("max_backoff", "must not be less than backoff")])
        return self


class BreakerConfig(_Model):
    """Circuit breaker of an upstream (shared by GraphQL resolvers and passthrough routes)."""

    enabled: bool = Field(default=True, description="Use a circuit breaker for this upstream.")
    failure_threshold: PositiveInt = Field(
        default=5, description="Consecutive failures (connect errors, timeouts, 5xx) that open it."
    )
    recovery_timeout: Seconds = Field(
        default=10.0, description="Time open before trying half-open."
    )
    success_threshold: PositiveInt = Field(
        default=2, description="Successes in half-open state that close it."
    )
    half_open_probes: PositiveInt = Field(
        default=1, description="Concurrent requests let through while half-open."
    )


class PassiveHealthConfig(_Model):
    """Outlier detection: a target failing repeatedly is skipped for a while."""

    enabled: bool = Field(default=True, description="Eject failing targets.")
    consecutive_failures: PositiveInt = Field(
        default=5, description="Failures in a row that eject it."
    )
    ejection_time: Seconds = Field(
        default=10.0, description="How long an ejected target is skipped."
    )


class HealthCheckConfig(_Model):
    """Active health checks: a background GET of ``path`` on every target."""

    path: str = Field(default="/health", description="Path probed on each target (2xx = healthy).")
    interval: Seconds = Field(default=5.0, description="Time between probes of a target.")
    timeout: Seconds | None = Field(
        default=None,
        description="Probe timeout; default min(1 s, interval). Must not exceed interval.",
    )
    unhealthy_threshold: PositiveInt = Field(
        default=3, description="Failed probes that mark it down."
    )
    healthy_threshold: PositiveInt = Field(
        default=2, description="Passed probes that mark it up again."
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/") or any(ch.isspace() for ch in value):
            raise ValueError(f"must start with '/' and contain no spaces (got {value!r})")
        return value

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheckConfig:
        if self.timeout is not None and self.timeout > self.interval:
            raise _problems([("timeout", "must not exceed interval")])
        return self

    @property
    def effective_timeout(self) -> float:
        """The probe timeout in use."""
        return self.timeout if self.timeout is not None else min(1.0, self.interval)


class UpstreamConfig(_Model):
    """A REST service the gateway talks to: its targets and how to call them."""

    targets: list[TargetConfig] = Field(
        min_length=1,
        description="Instances of the service: URL strings or {url, weight} objects.",
        json_schema_extra=lambda schema: _string_or_item_schema(schema),
    )
    balance: Balance = Field(
        default="round_robin", description="round_robin | least_requests | ip_hash | weighted."
    )
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig, description="Timeouts.")
    pool: PoolConfig = Field(default_factory=PoolConfig, description="Connection pool.")
    retries: RetryConfig = Field(default_factory=RetryConfig, description="Retry policy.")
    breaker: BreakerConfig = Field(default_factory=BreakerConfig, description="Circuit breaker.")
    passive_health: PassiveHealthConfig = Field(
        default_factory=PassiveHealthConfig, description="Passive health (outlier ejection)."
    )
    health_check: HealthCheckConfig | None = Field(
        default=None, description="Active health checks; off unless given."
    )
    transport: Literal["native", "aiohttp", "httpx"] = Field(
        default="native",
        description="Connection pool implementation: native (the gateway's own HTTP/1.1 "
        "client, the fastest: see docs/performance.md), aiohttp, or httpx's own. All are used "
        "through the httpx API.",
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _targets_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"url": t} if isinstance(t, str) else t for t in value]
        return value

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, value: list[TargetConfig]) -> list[TargetConfig]:
        problems: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        for i, target in enumerate(value):
            if target.url in seen:
                problems.append(
                    (f"[{i}]", f"duplicate target {target.url!r} (also [{seen[target.url]}])")
                )
            seen.setdefault(target.url, i)
        if value and not any(t.weight for t in value):
            problems.append(("", "at least one target needs a weight above 0"))
        if problems:
            raise _problems(problems)
        return value


# --------------------------------------------------------------------------------------------
# rate limits
# --------------------------------------------------------------------------------------------


class PlanConfig(_Model):
    """Request limits over one or more windows; every window must allow a request."""

    per_second: PositiveInt | None = Field(default=None, description="Requests per second.")
    per_minute: PositiveInt | None = Field(default=None, description="Requests per minute.")
    per_hour: PositiveInt | None = Field(default=None, description="Requests per hour.")
    per_day: PositiveInt | None = Field(default=None, description="Requests per day.")
    burst: PositiveInt | None = Field(
        default=None,
        description="Token bucket size; default: each window's own limit. Ignored by "
        "sliding_window.",
    )

    @model_validator(mode="after")
    def _one_window(self) -> PlanConfig:
        if not self.windows():
            raise _problems(
                [("", "needs at least one of per_second, per_minute, per_hour, per_day")]
            )
        return self

    def windows(self) -> list[tuple[float, int]]:
        """``(window seconds, limit)`` for each window set, shortest first."""
        spans = (
            (1.0, self.per_second),
            (60.0, self.per_minute),
            (3600.0, self.per_hour),
            (86400.0, self.per_day),
        )
        return [(span, limit) for span, limit in spans if limit is not None]


class RateLimitsConfig(_Model):
    """Rate limits per principal, chosen by the principal's tier."""

    plans: dict[str, PlanConfig] = Field(
        default_factory=dict,
        description="Plan per tier (anonymous, free, pro, enterprise or your own). When any "
        "plan is given, 'anonymous' is required; a tier without a plan gets 'anonymous'.",
    )
    algorithm: Algorithm = Field(
        default="token_bucket", description="token_bucket | sliding_window."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs (or IPs) of proxies whose X-Forwarded-For is believed.",
    )
    fail_open: bool = Field(
        default=True,
        description="Redis unreachable: true = fall back to local limits, false = answer 503.",
    )
    global_limit: PlanConfig | None = Field(
        default=None, description="One limit for all callers together, over the whole gateway."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        problems: list[tuple[str, str]] = []
        out: list[str] = []
        for i, item in enumerate(value):
            try:
                out.append(str(ipaddress.ip_network(item.strip(), strict=True)))
            except ValueError:
                try:
                    net = ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    problems.append((f"[{i}]", f"invalid CIDR {item!r}"))
                else:
                    problems.append(
                        (f"[{i}]", f"invalid CIDR {item!r}: host bits set (did you mean {net}?)")
                    )
        if problems:
            raise _problems(problems)
        return out

    @field_validator("plans")
    @classmethod
    def _check_plans(cls, value: dict[str, PlanConfig]) -> dict[str, PlanConfig]:
        problems: list[tuple[str, str]] = []
        for name in value:
            msg = _check_name(name, "plan")
            if msg:
                problems.append((name, msg))
        if value and "anonymous" not in value:
            problems.append(
                (
                    "",
                    "an 'anonymous' plan is required when plans are defined (it limits callers "
                    "without credentials and tiers that have no plan)",
                )
            )
        if problems:
            raise _problems(problems)
        return value


# --------------------------------------------------------------------------------------------
# GraphQL
# --------------------------------------------------------------------------------------------


class BatchingConfig(_Model):
    """Operation batching: a JSON array of operations in one request."""

    enabled: bool = Field(default=False, description="Accept batched operations.")
    max_operations: PositiveInt = Field(default=10, description="Most operations in one batch.")


class GraphQLAppConfig(_Model):
    """One GraphQL BFF app (its name is the frontend whose schema it serves)."""

    path: str = Field(description="Mount path, e.g. /graphql/web.")
    auth: AppAuth = Field(
        default="optional",
        description="optional: anonymous allowed; required: a JWT or API key; api_key: an API "
        "key only.",
    )
    max_depth: PositiveInt = Field(default=10, description="Deepest selection (root field = 1).")
    max_cost: PositiveInt = Field(
        default=10_000, description="Highest static cost of an operation."
    )
    max_aliases: NonNegInt = Field(default=30, description="Most aliases in a document.")
    max_root_fields: PositiveInt = Field(
        default=20, description="Most root fields in an operation."
    )
    max_tokens: PositiveInt = Field(default=5000, description="Most lexical tokens in a document.")
    graphiql: bool = Field(
        default=False, description="Serve GraphiQL on GET with Accept: text/html."
    )
    timeout: Seconds = Field(
        default=30.0, description="Budget of one request, upstream calls included."
    )
    persisted_queries: PersistedQueries = Field(
        default="off",
        description="off | apq (automatic persisted queries) | only (allow-listed operations).",
    )
    encodings: list[Encoding] = Field(
        default_factory=_default_encodings,
        min_length=1,
        description="Response encodings offered: json, cbor.",
    )
    batching: BatchingConfig = Field(
        default_factory=BatchingConfig, description="Operation batching."
    )
    rate_limit: PlanConfig | None = Field(
        default=None,
        description="An extra limit per principal on this app (the plan must allow too).",
    )
    global_limit: PlanConfig | None = Field(
        default=None, description="One limit for all callers of this app together."
    )

    @field_validator("persisted_queries", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    @field_validator("encodings")
    @classmethod
    def _unique_encodings(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        value = _norm_path(value)
        if value == "/":
            raise ValueError("must not be '/'")
        return value


class GraphQLConfig(_Model):
    """The GraphQL BFF apps and the schema modules their resolvers come from."""

    schema_modules: list[str] = Field(
        default_factory=list,
        description="Python modules that register types, fields and loaders (e.g. schema.users).",
    )
    cost_per_request: PositiveInt = Field(
        default=50,
        description="An operation counts as max(1, ceil(cost / this)) requests against the "
        "caller's rate limit.",
    )
    document_cache_size: PositiveInt = Field(
        default=1000, description="Parsed and validated documents kept (LRU), per app."
    )
    compiled_plans: bool = Field(
        default=True,
        description="Execute hot query documents through compiled plans (graphql-core runs "
        "the rest). false runs everything on graphql-core: for comparison and debugging.",
    )
    n_plus_one_threshold: PositiveInt = Field(
        default=10,
        description="In development mode, warn when one request sends more than this many "
        "requests to the same upstream path template.",
    )
    response_cache: bool = Field(
        default=True,
        description="Cache whole responses to anonymous queries whose cache hints allow it.",
    )
    apq_ttl: Seconds = Field(
        default=86_400,
        description="How long an automatically persisted query is kept after its registration.",
    )
    loader_cache: bool = Field(
        default=True,
        description="Keep loader values across requests where loaders ask for it (shared_ttl, "
        "stale_if_error); false turns both off.",
    )
    apps: dict[str, GraphQLAppConfig] = Field(
        default_factory=dict, description="Apps by name (web, mobile, iot, ...)."
    )

    @field_validator("schema_modules")
    @classmethod
    def _check_modules(cls, value: list[str]) -> list[str]:
        problems: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        for i, mod in enumerate(value):
            if not _MODULE_RE.match(mod):
                problems.append((f"[{i}]", f"not a Python module name: {mod!r}"))
            elif mod in seen:
                problems.append((f"[{i}]", f"duplicate module {mod!r} (also [{seen[mod]}])"))
            seen.setdefault(mod, i)
        if problems:
            raise _problems(problems)
        return value

    @field_validator("apps")
    @classmethod
    def _check_app_names(cls, value: dict[str, GraphQLAppConfig]) -> dict[str, GraphQLAppConfig]:
        problems = [(name, msg) for name in value if (msg := _check_name(name, "app"))]
        if problems:
            raise _problems(problems)
        return value


# --------------------------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------------------------


class RouteAuthConfig(_Model):
    """Authentication of a passthrough route."""

    required: bool = Field(
        default=False,
        description="Refuse callers without valid credentials (401). Implied by scopes.",
    )
    scopes: list[str] = Field(
        default_factory=list, description="Scopes the caller must all hold (403 otherwise)."
    )
    forward_jwt: bool = Field(
        default=False, description="Forward the caller's Authorization header to the upstream."
    )

    @model_validator(mode="before")
    @classmethod
    def _scopes_imply_required(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("scopes") and "required" not in data:
            return {**data, "required": True}
        return data

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: list[str]) -> list[str]:
        problems = [
            (f"[{i}]", f"invalid scope {s!r}: must be non-empty, without spaces")
            for i, s in enumerate(value)
            if not s or any(ch.isspace() or ord(ch) < 0x20 for ch in s)
        ]
        if problems:
            raise _problems(problems)
        return value

    @model_validator(mode="after")
    def _scopes_need_auth(self) -> RouteAuthConfig:
        if self.scopes and not self.required:
            raise _problems([("required", "must be true when scopes are listed")])
        return self


class RouteCacheConfig(_Model):
    """Response cache of a passthrough route (GET and HEAD only)."""

    ttl: Seconds = Field(
        description="Seconds a response is fresh when the upstream's Cache-Control says nothing."
    )
    stale_if_error: NonNegSeconds = Field(
        default=0.0,
        description="Serve an entry this long past its expiry when the upstream fails.",
    )
    vary: list[str] = Field(
        default_factory=list,
        description="Request headers added to the cache key (besides the upstream's Vary).",
    )
    private: bool = Field(
        default=False, description="Key entries by principal too (responses per caller)."
    )
    authorized: bool = Field(
        default=False,
        description="Also cache responses to requests with credentials (Authorization or API "
        "key); without private, such responses are shared between callers.",
    )

    @field_validator("vary")
    @classmethod
    def _check_vary(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_check_header_name(v) for v in value))


class HeaderTransformConfig(_Model):
    """Header edits, applied in this order: remove, rename, add."""

    add: dict[str, str] = Field(
        default_factory=dict, description="Headers to set (replacing any existing value)."
    )
    remove: list[str] = Field(default_factory=list, description="Headers to drop.")
    rename: dict[str, str] = Field(default_factory=dict, description="Old name -> new name.")

    @field_validator("add")
    @classmethod
    def _check_add(cls, value: dict[str, str]) -> dict[str, str]:
        return {_check_header_name(k): _check_header_value(v) for k, v in value.items()}

    @field_validator("remove")
    @classmethod
    def _check_remove(cls, value: list[str]) -> list[str]:
        return [_check_header_name(v) for v in value]

    @field_validator("rename")
    @classmethod
    def _check_rename(cls, value: dict[str, str]) -> dict[str, str]:
        return {_check_header_name(k): _check_header_name(v) for k, v in value.items()}


class TransformsConfig(_Model):
    """Header transforms of a route, for the forwarded request and the returned response."""

    request: HeaderTransformConfig = Field(
        default_factory=HeaderTransformConfig, description="Applied before forwarding."
    )
    response: HeaderTransformConfig = Field(
        default_factory=HeaderTransformConfig, description="Applied to the upstream's answer."
    )


class SplitConfig(_Model):
    """One branch of a weighted traffic split."""

    upstream: str = Field(description="Upstream name.")
    weight: NonNegInt = Field(default=1, description="Relative share of the route's requests.")


class RouteConfig(_Model):
    """A REST passthrough route: requests under ``path`` are forwarded to an upstream."""

    id: str = Field(description="Unique id (metrics labels, admin API, logs).")
    path: str = Field(description="Path prefix, matched segment-wise; the longest prefix wins.")
    methods: list[HttpMethod] = Field(
        default_factory=_default_methods,
        min_length=1,
        description="Methods served (others: 405). GET implies HEAD. Default: all.",
    )
    hosts: list[str] = Field(
        default_factory=list,
        description="Host matchers (exact or *.example.com); empty: any host.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header matchers: name -> exact value (e.g. x-canary: 'true').",
    )
    upstream: str | None = Field(default=None, description="Upstream to forward to (or use split).")
    split: list[SplitConfig] | None = Field(
        default=None, description="Weighted split across upstreams, in place of upstream."
    )
    strip_prefix: str | None = Field(
        default=None, description="Leading part of the path removed before forwarding."
    )
    timeout: Seconds = Field(default=30.0, description="Budget of one request, retries included.")
    connect_timeout: Seconds | None = Field(
        default=None, description="Per-try connect timeout; default the upstream's timeout.connect."
    )
    read_timeout: Seconds | None = Field(
        default=None, description="Per-try read timeout; default the upstream's timeout.read."
    )
    max_body_bytes: PositiveInt | None = Field(
        default=None, description="Request body limit; default limits.max_body_bytes."
    )
    allow_encoded_slashes: bool = Field(
        default=False,
        description="Forward paths with %2F/%5C (still encoded) instead of refusing them.",
    )
    auth: RouteAuthConfig = Field(
        default_factory=RouteAuthConfig, description="Authentication and scopes."
    )
    rate_limit: PlanConfig | None = Field(
        default=None,
        description="An extra limit per principal on this route (the plan must allow too).",
    )
    global_limit: PlanConfig | None = Field(
        default=None, description="One limit for all callers of this route together."
    )
    cache: RouteCacheConfig | None = Field(
        default=None, description="Response cache; off unless given."
    )
    transforms: TransformsConfig = Field(
        default_factory=TransformsConfig, description="Header transforms."
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        msg = _check_name(value, "route id")
        if msg:
            raise ValueError(msg)
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _norm_path(value)

    @field_validator("methods", mode="before")
    @classmethod
    def _upper_methods(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [m.upper() if isinstance(m, str) else m for m in value]
        return value

    @field_validator("methods")
    @classmethod
    def _head_with_get(cls, value: list[str]) -> list[str]:
        methods = list(dict.fromkeys(value))
        if "GET" in methods and "HEAD" not in methods:
            methods.insert(methods.index("GET") + 1, "HEAD")
        return methods

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        problems: list[tuple[str, str]] = []
        out: list[str] = []
        for i, host in enumerate(value):
            norm = host.strip().lower().rstrip(".")
            if not _HOST_RE.match(norm):
                problems.append(
                    (f"[{i}]", f"invalid host {host!r}: a host name or *.domain, without port")
                )
            out.append(norm)
        if problems:
            raise _problems(problems)
        return list(dict.fromkeys(out))

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return {_check_header_name(k): _check_header_value(v) for k, v in value.items()}

    @field_validator("strip_prefix")
    @classmethod
    def _check_strip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = _norm_path(value)
        path = info.data.get("path")
        if path is not None and not _under(path, value):
            raise ValueError(f"{value!r} is not a prefix of the route's path {path!r}")
        return value

    @model_validator(mode="after")
    def _target_and_cache(self) -> RouteConfig:
        problems: list[tuple[str, str]] = []
        if self.upstream is not None and self.split is not None:
            problems.append(("split", "give either 'upstream' or 'split', not both"))
        elif self.upstream is None and self.split is None:
            problems.append(("upstream", "is required (or 'split' for a weighted split)"))
        if self.split is not None:
            if not self.split:
                problems.append(("split", "must list at least one upstream"))
            elif not any(s.weight for s in self.split):
                problems.append(("split", "at least one weight must be above 0"))
            seen: dict[str, int] = {}
            for i, branch in enumerate(self.split):
                if branch.upstream in seen:
                    problems.append(
                        (
                            f"split[{i}].upstream",
                            f"upstream {branch.upstream!r} is listed twice "
                            f"(also split[{seen[branch.upstream]}])",
                        )
                    )
                seen.setdefault(branch.upstream, i)
        if self.cache is not None and "GET" not in self.methods:
            problems.append(("cache", "only GET and HEAD responses are cached; methods has no GET"))
        if problems:
            raise _problems(problems)
        return self

    @property
    def upstream_names(self) -> list[str]:
        """Every upstream this route may forward to."""
        if self.split is not None:
            return [s.upstream for s in self.split]
        return [self.upstream] if self.upstream is not None else []


# --------------------------------------------------------------------------------------------
# limits, CORS, observability
# --------------------------------------------------------------------------------------------


class LimitsConfig(_Model):
    """Request size limits at the edge (413 / 431 above them)."""

    max_body_bytes: PositiveInt = Field(
        default=1_048_576,
        description="Request body limit (GraphQL and buffered routes; streamed routes count as "
        "they go). A route may override it.",
    )
    max_header_bytes: PositiveInt = Field(
        default=16_384, description="Total size of request headers."
    )


class CompressionConfig(_Model):
    """Response compression at the edge: gzip, and br when the brotli extra is installed."""

    enabled: bool = Field(default=True, description="Compress responses the client accepts so.")
    min_bytes: NonNegInt = Field(
        default=1024, description="Smallest body compressed (streamed bodies always are)."
    )
    gzip_level: int = Field(default=6, ge=1, le=9, description="gzip level, 1 (fast) to 9.")
    brotli_quality: int = Field(default=4, ge=0, le=11, description="brotli quality, 0 to 11.")


class CorsConfig(_Model):
    """Cross-origin resource sharing. Off unless allow_origins is set."""

    allow_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed (scheme://host[:port]), or ['*'].",
    )
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "POST", "OPTIONS"],
        description="Methods allowed in cross-origin requests.",
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-api-key", "x-request-id"],
        description="Request headers allowed in cross-origin requests.",
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: [
            "x-request-id",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
        ],
        description="Response headers scripts may read.",
    )
    allow_credentials: bool = Field(default=False, description="Allow cookies/credentials.")
    max_age: NonNegInt = Field(
        default=600, description="Seconds browsers may cache a preflight answer."
    )

    @field_validator("allow_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        problems: list[tuple[str, str]] = []
        out: list[str] = []
        for i, origin in enumerate(value):
            if origin == "*":
                out.append(origin)
                continue
            try:
                url = _http_url(origin, allow_path=False)
            except ValueError as exc:
                problems.append((f"[{i}]", f"invalid origin: {exc}"))
            else:
                out.append(url)
        if problems:
            raise _problems(problems)
        return out

    @field_validator("allow_methods")
    @classmethod
    def _check_methods(cls, value: list[str]) -> list[str]:
        out = [m.upper() for m in value]
        bad = [
            (f"[{i}]", f"unknown method {m!r}")
            for i, m in enumerate(out)
            if m != "*" and m not in ALL_METHODS
        ]
        if bad:
            raise _problems(bad)
        return out

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _check_headers(cls, value: list[str]) -> list[str]:
        return [v if v == "*" else _check_header_name(v) for v in value]

    @model_validator(mode="after")
    def _credentials_need_origins(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise _problems(
                [
                    (
                        "allow_credentials",
                        "cannot be true with allow_origins '*' (browsers refuse it)",
                    )
                ]
            )
        return self


class MetricsConfig(_Model):
    """Prometheus metrics endpoint (text exposition format)."""

    enabled: bool = Field(default=True, description="Serve metrics.")
    path: str = Field(default="/metrics", description="Path of the metrics endpoint.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        value = _norm_path(value)
        if value == "/":
            raise ValueError("must not be '/'")
        return value


class TracingConfig(_Model):
    """OpenTelemetry tracing; exported over OTLP when an endpoint is set."""

    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector URL; unset: tracing is off."
    )
    sample_ratio: float = Field(
        default=0.1, ge=0, le=1, allow_inf_nan=False, description="Share of new traces recorded."
    )
    service_name: str = Field(default="bff", min_length=1, description="service.name of the spans.")

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class ObservabilityConfig(_Model):
    """Metrics, tracing and logs."""

    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="OpenTelemetry.")
    access_log: AccessLog = Field(default="json", description="json | text | off.")
    log_level: LogLevel = Field(
        default="info", description="debug | info | warning | error | critical."
    )

    @field_validator("access_log", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    @field_validator("access_log", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# root
# --------------------------------------------------------------------------------------------


class GatewayConfig(_Model):
    """The bff gateway configuration file."""

    mode: Mode = Field(
        default="production",
        description="development turns on developer aids (the N+1 warning); production "
        "(the default) is for real traffic.",
    )
    listen: ListenConfig = Field(default_factory=ListenConfig, description="Listening socket.")
    state: StateConfig = Field(default_factory=StateConfig, description="Shared runtime state.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Persistent store.")
    admin: AdminConfig = Field(default_factory=AdminConfig, description="Admin API.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication.")
    upstreams: dict[str, UpstreamConfig] = Field(
        default_factory=dict, description="Upstream services by name."
    )
    rate_limits: RateLimitsConfig = Field(
        default_factory=RateLimitsConfig, description="Rate limiting."
    )
    graphql: GraphQLConfig = Field(default_factory=GraphQLConfig, description="GraphQL apps.")
    routes: list[RouteConfig] = Field(default_factory=list, description="REST passthrough routes.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Size limits.")
    compression: CompressionConfig = Field(
        default_factory=CompressionConfig, description="Response compression."
    )
    cors: CorsConfig = Field(default_factory=CorsConfig, description="CORS.")
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig, description="Metrics, tracing, logs."
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("upstreams")
    @classmethod
    def _check_upstream_names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        problems = [(name, msg) for name in value if (msg := _check_name(name, "upstream"))]
        if problems:
            raise _problems(problems)
        return value

    @model_validator(mode="after")
    def _check_whole(self) -> GatewayConfig:
        problems = _cross_checks(self)
        if problems:
            raise _problems(problems)
        return self

    @property
    def is_development(self) -> bool:
        """True in development mode."""
        return self.mode == "development"

    def summary(self) -> str:
        """A few lines describing the configuration (for ``bff config check``)."""
        return summarize(self)


def _unknown_upstream(name: str, known: list[str]) -> str:
    if not known:
        return f"unknown upstream {name!r} (no upstreams are defined)"
    hint = _did_you_mean(name, known)
    listed = ", ".join(known)
    if hint:
        return f"unknown upstream {name!r} (did you mean {hint!r}? known: {listed})"
    return f"unknown upstream {name!r} (known: {listed})"


def _cross_checks(cfg: GatewayConfig) -> list[tuple[str, str]]:
    """Checks that span sections; each problem has a key path from the root."""
    problems: list[tuple[str, str]] = []
    known = list(cfg.upstreams)
    admin = cfg.admin.path if cfg.admin.enabled else None
    metrics = cfg.observability.metrics.path if cfg.observability.metrics.enabled else None

    exact: dict[str, str] = {p: "the gateway's health endpoint" for p in RESERVED_PATHS}
    if metrics:
        exact[metrics] = "the metrics endpoint (observability.metrics.path)"
        if metrics in RESERVED_PATHS:
            problems.append(("observability.metrics.path", f"{metrics!r} is reserved"))
        if admin and _under(metrics, admin):
            problems.append(
                ("observability.metrics.path", f"{metrics!r} is inside the admin path {admin!r}")
            )
    if admin and any(_under(p, admin) for p in RESERVED_PATHS):
        problems.append(("admin.path", f"{admin!r} covers a reserved health path"))

    # GraphQL apps: unique, non-overlapping paths clear of the gateway's own.
    app_paths: dict[str, str] = {}
    for name, app in cfg.graphql.apps.items():
        key = f"graphql.apps.{name}.path"
        if app.path in exact:
            problems.append((key, f"{app.path!r} is already {exact[app.path]}"))
        elif admin and _under(app.path, admin):
            problems.append((key, f"{app.path!r} is inside the admin path {admin!r}"))
        for other, other_path in app_paths.items():
            if app.path == other_path:
                problems.append((key, f"{app.path!r} is already used by graphql.apps.{other}"))
            elif _under(app.path, other_path) or _under(other_path, app.path):
                problems.append(
                    (key, f"{app.path!r} overlaps {other_path!r} of graphql.apps.{other}")
                )
        app_paths[name] = app.path

    # Routes: known upstreams, unique ids, clear of the gateway's own paths, never shadowed.
    ids: dict[str, int] = {}
    matchers: dict[tuple[str, frozenset[str], frozenset[tuple[str, str]]], int] = {}
    for i, route in enumerate(cfg.routes):
        at = f"routes[{i}]"
        if route.id in ids:
            problems.append(
                (f"{at}.id", f"duplicate route id {route.id!r} (also routes[{ids[route.id]}])")
            )
        ids.setdefault(route.id, i)
        if route.upstream is not None and route.upstream not in cfg.upstreams:
            problems.append((f"{at}.upstream", _unknown_upstream(route.upstream, known)))
        for j, branch in enumerate(route.split or []):
            if branch.upstream not in cfg.upstreams:
                problems.append(
                    (f"{at}.split[{j}].upstream", _unknown_upstream(branch.upstream, known))
                )
        if route.path in exact:
            problems.append((f"{at}.path", f"{route.path!r} is already {exact[route.path]}"))
        elif admin and _under(route.path, admin):
            problems.append((f"{at}.path", f"{route.path!r} is inside the admin path {admin!r}"))
        else:
            for name, app_path in app_paths.items():
                if _under(route.path, app_path):
                    problems.append(
                        (f"{at}.path", f"{route.path!r} is inside graphql.apps.{name} ({app_path})")
                    )
                    break
        match_key = (route.path, frozenset(route.hosts), frozenset(route.headers.items()))
        if match_key in matchers:
            j = matchers[match_key]
            overlap = [m for m in route.methods if m in cfg.routes[j].methods]
            if overlap:
                problems.append(
                    (
                        f"{at}.path",
                        f"same path and matchers as routes[{j}] ({cfg.routes[j].id!r}) for "
                        f"{', '.join(overlap)}: this route would never match",
                    )
                )
        else:
            matchers[match_key] = i
    return problems


# --------------------------------------------------------------------------------------------
# ${NAME:-default} expansion
# --------------------------------------------------------------------------------------------


def _expand_string(text: str, env: Mapping[str, str], path: str) -> tuple[str, list[str]]:
    """Expand one string; return the result and the problems found (messages)."""
    out: list[str] = []
    problems: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and text.startswith("$${", i):
            out.append("${")
            i += 3
            continue
        if ch == "$" and text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                problems.append(
                    f"unterminated '${{' in {text!r} (write '$${{' for a literal '${{')"
                )
                out.append(text[i:])
                break
            inner = text[i + 2 : end]
            name, sep, default = inner.partition(":-")
            if not _ENV_NAME_RE.match(name):
                problems.append(
                    f"invalid variable reference '${{{inner}}}' "
                    "(use ${NAME} or ${NAME:-default}; '$${' for a literal '${')"
                )
            else:
                value = env.get(name)
                if sep:
                    out.append(value if value else default)
                elif value is None:
                    problems.append(
                        f"environment variable {name!r} is not set "
                        f"(set it, or give a default: ${{{name}:-default}})"
                    )
                else:
                    out.append(value)
            i = end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out), problems


def expand_env(data: Any, env: Mapping[str, str] | None = None, *, source: str = "") -> Any:
    """Return a copy of parsed YAML ``data`` with ``${NAME}``/``${NAME:-default}`` expanded in
    string values (never in keys). Raises :class:`ConfigError` naming each key path whose
    variable is unset without a default."""
    env = os.environ if env is None else env
    problems: list[tuple[str, str]] = []
    count = 0

    def walk(node: Any, path: str) -> Any:
        nonlocal count
        count += 1
        if count > _MAX_NODES:
            raise ConfigError([("", "the configuration is too large (alias expansion?)")], source)
        if isinstance(node, str):
            if "$" not in node:
                return node
            value, msgs = _expand_string(node, env, path)
            problems.extend((path, m) for m in msgs)
            return value
        if isinstance(node, dict):
            return {k: walk(v, _join(path, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    result = walk(data, "")
    if problems:
        raise ConfigError(problems, source)
    return result


# --------------------------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable keys: let PyYAML report them
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = exc.problem or "invalid YAML"
        ctx = f" ({exc.context})" if exc.context and "duplicate" not in what else ""
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}{ctx}"
    return f"YAML syntax error: {exc}"


# --------------------------------------------------------------------------------------------
# Error translation
# --------------------------------------------------------------------------------------------


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for el in loc:
        path = f"{path}[{el}]" if isinstance(el, int) else _join(path, str(el))
    return path


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class describing the value at ``loc`` (None when not a model)."""
    tp: Any = GatewayConfig
    for el in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(el))
            if field is None:
                return None
            tp = field.annotation
            continue
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is list and args:
            tp = args[0]
        elif origin is dict and len(args) == 2:
            tp = args[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _raw_at(raw: Any, loc: tuple[int | str, ...]) -> Any:
    for el in loc:
        try:
            raw = raw[el]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def _describe(err: Any, raw: Any) -> tuple[str, str]:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    got = f" (got {_show(value)})"

    if loc and loc[-1] == "[key]":
        return _loc_path(loc[:-1]), f"keys must be strings{got}"
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        hint = _did_you_mean(key, allowed)
        if hint:
            return _loc_path(loc), f"unknown key {key!r} (did you mean {hint!r}?)"
        listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return _loc_path(loc), f"unknown key {key!r}{listed}"

    path = _loc_path(loc)
    # A target written as a plain string: report at the string, not at its `.url`.
    if loc and loc[-1] == "url" and isinstance(_raw_at(raw, loc[:-1]), str):
        path = _loc_path(loc[:-1])

    if kind == "missing":
        return path, "is required"
    if kind in ("value_error", "assertion_error"):
        return path, str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        return path, f"must be one of {ctx.get('expected', '?')}{got}"
    if kind == "string_type" and isinstance(value, bool):
        return path, f'must be a string (got {_show(value)}; quote it: "{_show(value)}")'
    if kind in _TYPE_MESSAGES:
        return path, _TYPE_MESSAGES[kind] + got
    if kind == "greater_than":
        return path, f"must be greater than {_num(ctx.get('gt'))}{got}"
    if kind == "greater_than_equal":
        return path, f"must be at least {_num(ctx.get('ge'))}{got}"
    if kind == "less_than":
        return path, f"must be less than {_num(ctx.get('lt'))}{got}"
    if kind == "less_than_equal":
        return path, f"must be at most {_num(ctx.get('le'))}{got}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return path, "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return path, "must not be empty" if n == 1 else f"must have at least {n} items"
    if kind in ("too_long", "string_too_long"):
        return path, f"must have at most {ctx.get('max_length')} items"
    msg = str(err.get("msg", "is invalid"))
    return path, (msg[:1].lower() + msg[1:]) if msg else "is invalid"


def _translate(
    exc: ValidationError, raw: Any, at: tuple[int | str, ...] = ()
) -> list[tuple[str, str]]:
    # ``at``: where in the whole file (``raw``) the validated value sits.
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = (*at, *err["loc"])
        if err["type"] == "bff_problems":
            base = _loc_path(loc)
            for rel, msg in (err.get("ctx") or {}).get("problems", []):
                problems.append((_join(base, rel), msg))
        else:
            problems.append(_describe({**err, "loc": loc}, raw))
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_config(
    text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Parse and validate configuration text. ``env`` defaults to ``os.environ``.

    Raises :class:`ConfigError` with ``(key path, message)`` problems.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([("", _yaml_problem(exc))], source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({_show(data)})"
        raise ConfigError(
            [
                (
                    "",
                    f"the file must be a mapping of sections (listen:, upstreams:, routes:, ...), "
                    f"not {kind}",
                )
            ],
            source,
        )
    data = expand_env(data, env, source=source)
    return validate_config(data, source=source)


def validate_config(data: Mapping[str, Any], *, source: str = "<data>") -> GatewayConfig:
    """Validate already-parsed (and env-expanded) data; raise :class:`ConfigError`."""
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_translate(exc, data), source) from None


def check_routes(
    config: GatewayConfig, routes: Sequence[Any], *, source: str = "<routes>"
) -> list[RouteConfig]:
    """Validate ``routes`` as if they were ``config``'s ``routes:`` (admin-managed routes).

    Each item (a route object as written under ``routes:``, or an already built
    :class:`RouteConfig`) is validated alone, then the list is cross-checked with the rest of
    ``config`` exactly as a file is: known upstreams, unique ids, paths clear of the gateway's
    own and never shadowed. Raises :class:`ConfigError` with key paths ``routes[i]...``.
    """
    raw = {"routes": list(routes)}
    validated: list[RouteConfig] = []
    problems: list[tuple[str, str]] = []
    for i, route in enumerate(routes):
        if isinstance(route, RouteConfig):
            validated.append(route)
            continue
        try:
            validated.append(RouteConfig.model_validate(route))
        except ValidationError as exc:
            problems.extend(_translate(exc, raw, ("routes", i)))
    if not problems:
        problems = _cross_checks(config.model_copy(update={"routes": validated}))
    if problems:
        raise ConfigError(problems, source)
    return validated


def load_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read, expand and validate the YAML file at ``path``; raise :class:`ConfigError`."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("", f"file not found: {source}")], source) from None
    except IsADirectoryError:
        raise ConfigError([("", f"is a directory, not a file: {source}")], source) from None
    except UnicodeDecodeError:
        raise ConfigError([("", "the file is not UTF-8 text")], source) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read {source}: {exc.strerror or exc}")], source) from None
    return parse_config(text, source=source, env=env)


_ENV_REF_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${NAME} or ${NAME:-default}, expanded when the file is loaded",
}
_OUTER_KEYS = ("title", "description", "default")


def _allow_env_refs(node: Any) -> Any:
    """Let every non-string scalar (and enum or patterned string) also be a ${...} reference."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in ("properties", "$defs"):
        if isinstance(out.get(key), dict):
            out[key] = {k: _allow_env_refs(v) for k, v in out[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _allow_env_refs(out[key])
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_allow_env_refs(v) for v in out[key]]
    scalar = out.get("type") in ("integer", "number", "boolean") or (
        out.get("type") == "string" and ("enum" in out or "pattern" in out)
    )
    if scalar:
        outer = {k: out.pop(k) for k in _OUTER_KEYS if k in out}
        return {**outer, "anyOf": [out, _ENV_REF_SCHEMA]}
    return out


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file (draft 2020-12), for editors.

    Wherever a number, boolean or enum is expected, a ``${NAME:-default}`` string is accepted
    too, since expansion happens when the file is loaded.
    """
    schema = copy.deepcopy(GatewayConfig.model_json_schema(mode="validation"))
    schema = _allow_env_refs(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "bff gateway configuration",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def summarize(cfg: GatewayConfig) -> str:
    """A few human lines about ``cfg`` (secrets and passwords are never shown)."""
    lines = [f"mode: {cfg.mode}; listening on {cfg.listen.host}:{cfg.listen.port}"]
    state: str = cfg.state.backend
    if cfg.state.backend == "redis" and cfg.state.redis_url:
        state += f" ({_redact_url(cfg.state.redis_url)})"
    lines.append(f"state: {state}; store: {_redact_url(cfg.store.url)}")
    ups = ", ".join(
        f"{name} ({len(u.targets)} target{'s' if len(u.targets) != 1 else ''})"
        for name, u in cfg.upstreams.items()
    )
    lines.append(f"upstreams ({len(cfg.upstreams)}): {ups or '-'}")
    routes = ", ".join(f"{r.id} {r.path} -> {'/'.join(r.upstream_names)}" for r in cfg.routes)
    lines.append(f"routes ({len(cfg.routes)}): {routes or '-'}")
    apps = ", ".join(f"{name} at {app.path}" for name, app in cfg.graphql.apps.items())
    lines.append(f"graphql apps ({len(cfg.graphql.apps)}): {apps or '-'}")
    if not cfg.admin.enabled:
        admin = "off"
    elif cfg.admin.token:
        admin = f"on at {cfg.admin.path}"
    else:
        admin = f"on at {cfg.admin.path}, but no token is set (admin paths answer 404)"
    lines.append(f"admin: {admin}")
    plans = ", ".join(cfg.rate_limits.plans) or "none"
    lines.append(f"rate-limit plans: {plans} ({cfg.rate_limits.algorithm})")
    return "\n".join(lines)
