"""The engine's typed errors.

Every failure the gateway reports to a client is one of these. They carry no HTTP or GraphQL
knowledge: the single mapping to REST status codes and GraphQL ``extensions.code`` values lives in
:mod:`bff.error_mapping`, so both front doors describe a failure the same way.
"""

from __future__ import annotations

__all__ = [
    "AliasLimitExceeded",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "CostLimitExceeded",
    "DepthLimitExceeded",
    "Forbidden",
    "GatewayError",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "OperationLimitExceeded",
    "PayloadTooLarge",
    "PersistedQueryNotAllowed",
    "PersistedQueryNotFound",
    "PersistedQueryNotSupported",
    "RateLimited",
    "RootFieldLimitExceeded",
    "ServiceUnavailable",
    "TokenLimitExceeded",
    "Unauthenticated",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class GatewayError(Exception):
    """Base of every error the gateway reports to a client.

    ``message`` is safe to show to the caller: it never holds upstream URLs, stack traces or
    secrets. ``code`` is the stable machine-readable name used in REST bodies and as the GraphQL
    ``extensions.code``.
    """

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default_message())
        self.message = message or self.default_message()
        self.headers = headers or {}

    @classmethod
    def default_message(cls) -> str:
        return "internal server error"


class Unauthenticated(GatewayError):
    """No credentials, or credentials that could not be verified."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "", *, scheme: str = "Bearer", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.scheme = scheme

    @classmethod
    def default_message(cls) -> str:
        return "authentication required"


class Forbidden(GatewayError):
    """Authenticated, but not allowed (a scope is missing)."""

    code = "FORBIDDEN"

    @classmethod
    def default_message(cls) -> str:
        return "forbidden"


class RateLimited(GatewayError):
    """The caller exceeded a rate limit; ``retry_after`` is in seconds."""

    code = "RATE_LIMITED"

    def __init__(self, message: str = "", *, retry_after: float = 1.0, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    @classmethod
    def default_message(cls) -> str:
        return "rate limit exceeded"


class NotFound(GatewayError):
    """Nothing is served at this path (REST), or an entity does not exist."""

    code = "NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "not found"


class Conflict(GatewayError):
    """The request clashes with the current state (an id already taken, a read-only entity)."""

    code = "CONFLICT"

    @classmethod
    def default_message(cls) -> str:
        return "conflict"


class MethodNotAllowed(GatewayError):
    """The path exists but not for this method; ``allow`` lists the methods that are."""

    code = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str = "", *, allow: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.allow = allow or []

    @classmethod
    def default_message(cls) -> str:
        return "method not allowed"


class NotAcceptable(GatewayError):
    """The client's ``Accept`` header names no representation the gateway can produce."""

    code = "NOT_ACCEPTABLE"

    @classmethod
    def default_message(cls) -> str:
        return "not acceptable"


class UnsupportedMediaType(GatewayError):
    """The request body's ``Content-Type`` is not one the endpoint accepts."""

    code = "UNSUPPORTED_MEDIA_TYPE"

    @classmethod
    def default_message(cls) -> str:
        return "unsupported Content-Type"


class BadRequest(GatewayError):
    """The request itself is malformed or its input is invalid."""

    code = "BAD_USER_INPUT"

    @classmethod
    def default_message(cls) -> str:
        return "bad request"


class OperationLimitExceeded(GatewayError):
    """A GraphQL operation is over one of its app's cost-control limits; refused before it runs.

    ``limit`` is the app's maximum and ``actual`` what the operation has (``None`` when not
    measured, as for a document cut short by the token limit).
    """

    code = "OPERATION_LIMIT_EXCEEDED"

    def __init__(
        self, message: str = "", *, limit: int, actual: int | None = None, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.limit = limit
        self.actual = actual

    @classmethod
    def default_message(cls) -> str:
        return "the operation is over a limit of this endpoint"


class DepthLimitExceeded(OperationLimitExceeded):
    """Selections nested deeper than the app's ``max_depth`` (the root field is depth 1)."""

    code = "DEPTH_LIMIT_EXCEEDED"


class AliasLimitExceeded(OperationLimitExceeded):
    """More aliases than the app's ``max_aliases``."""

    code = "ALIAS_LIMIT_EXCEEDED"


class RootFieldLimitExceeded(OperationLimitExceeded):
    """More root fields than the app's ``max_root_fields``."""

    code = "ROOT_FIELD_LIMIT_EXCEEDED"


class TokenLimitExceeded(OperationLimitExceeded):
    """A document longer than the app's ``max_tokens`` lexical tokens."""

    code = "TOKEN_LIMIT_EXCEEDED"


class CostLimitExceeded(OperationLimitExceeded):
    """A static cost above the app's ``max_cost``."""

    code = "COST_LIMIT_EXCEEDED"


class PayloadTooLarge(GatewayError):
    """The request body (or a header block) is over the configured limit."""

    code = "PAYLOAD_TOO_LARGE"

    @classmethod
    def default_message(cls) -> str:
        return "payload too large"


class PersistedQueryNotFound(GatewayError):
    """A persisted-query hash this app does not know (yet): the client sends the query with it.

    Apollo clients expect it as a 200 answer with this error, then retry with the full query.
    """

    code = "PERSISTED_QUERY_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "PersistedQueryNotFound"


class PersistedQueryNotSupported(GatewayError):
    """A persisted-query hash sent to an app without persisted queries (200, like Apollo)."""

    code = "PERSISTED_QUERY_NOT_SUPPORTED"

    @classmethod
    def default_message(cls) -> str:
        return "PersistedQueryNotSupported"


class PersistedQueryNotAllowed(GatewayError):
    """An operation that is not registered, sent to an app that runs registered ones only."""

    code = "PERSISTED_QUERY_NOT_ALLOWED"

    @classmethod
    def default_message(cls) -> str:
        return "only registered operations run on this endpoint"


class ServiceUnavailable(GatewayError):
    """The gateway itself cannot serve right now (draining, shared state unreachable)."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str = "", *, retry_after: float = 1.0, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    @classmethod
    def default_message(cls) -> str:
        return "service unavailable"


class UpstreamUnavailable(GatewayError):
    """The upstream was not tried: its breaker is open or no target is healthy."""

    code = "UPSTREAM_UNAVAILABLE"

    def __init__(
        self, message: str = "", *, upstream: str = "", retry_after: float = 1.0, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.upstream = upstream
        self.retry_after = retry_after

    @classmethod
    def default_message(cls) -> str:
        return "upstream service unavailable"


class UpstreamTimeout(GatewayError):
    """The upstream did not answer within the request's remaining budget."""

    code = "UPSTREAM_TIMEOUT"

    def __init__(self, message: str = "", *, upstream: str = "", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.upstream = upstream

    @classmethod
    def default_message(cls) -> str:
        return "upstream service timed out"


class UpstreamError(GatewayError):
    """The upstream could not be reached, reset the connection, or answered with a failure."""

    code = "UPSTREAM_ERROR"

    def __init__(
        self, message: str = "", *, upstream: str = "", status: int | None = None, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.upstream = upstream
        self.status = status

    @classmethod
    def default_message(cls) -> str:
        return "upstream service failed"


class ConfigError(Exception):
    """The configuration file is invalid. ``problems`` holds ``(key path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        where = f"{source}: " if source else ""
        super().__init__(where + "invalid configuration\n  " + "\n  ".join(lines))
