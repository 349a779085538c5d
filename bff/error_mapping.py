"""The one place where typed errors become HTTP answers and GraphQL error entries.

See DESIGN.md's table. REST bodies are ``{"error": {"code", "message", "request_id"}}``;
GraphQL errors carry ``extensions.code``. Anything that is not a :class:`GatewayError` is an
internal error: logged with its traceback, masked for the client.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from bff.errors import (
    AliasLimitExceeded,
    BadRequest,
    Conflict,
    CostLimitExceeded,
    DepthLimitExceeded,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    OperationLimitExceeded,
    PayloadTooLarge,
    PersistedQueryNotAllowed,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    RateLimited,
    RootFieldLimitExceeded,
    ServiceUnavailable,
    TokenLimitExceeded,
    Unauthenticated,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "graphql_code",
    "graphql_extensions",
    "http_status",
    "rest_error",
    "rest_error_headers",
]

_STATUS: dict[type[GatewayError], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    NotAcceptable: 406,
    BadRequest: 400,
    OperationLimitExceeded: 400,
    PayloadTooLarge: 413,
    # GraphQL only. Apollo clients read these two from a 200 answer (and then send the full
    # query); an error status would make them give up instead.
    PersistedQueryNotFound: 200,
    PersistedQueryNotSupported: 200,
    PersistedQueryNotAllowed: 400,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    ServiceUnavailable: 503,
    UpstreamUnavailable: 503,
    UpstreamTimeout: 504,
    UpstreamError: 502,
}


def http_status(exc: BaseException) -> int:
    """The REST status code for ``exc`` (500 for anything unexpected)."""
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def graphql_code(exc: BaseException) -> str:
    """The GraphQL ``extensions.code`` for ``exc`` (INTERNAL_SERVER_ERROR when unexpected)."""
    if isinstance(exc, GatewayError):
        return exc.code
    return "INTERNAL_SERVER_ERROR"


# The measured value and the maximum of each cost-control refusal, under these extension names.
_LIMIT_EXTENSIONS: dict[type[OperationLimitExceeded], tuple[str, str]] = {
    DepthLimitExceeded: ("depth", "maxDepth"),
    AliasLimitExceeded: ("aliases", "maxAliases"),
    RootFieldLimitExceeded: ("rootFields", "maxRootFields"),
    TokenLimitExceeded: ("tokens", "maxTokens"),
    CostLimitExceeded: ("cost", "maxCost"),
}


def graphql_extensions(exc: BaseException) -> dict[str, Any]:
    """The ``extensions`` of a GraphQL error entry for ``exc``: its code, plus for a
    cost-control refusal the measured value and the limit (``{"code": "COST_LIMIT_EXCEEDED",
    "cost": 1121, "maxCost": 1000}``)."""
    extensions: dict[str, Any] = {"code": graphql_code(exc)}
    if isinstance(exc, OperationLimitExceeded):
        names = _LIMIT_EXTENSIONS.get(type(exc))
        if names is not None:
            if exc.actual is not None:
                extensions[names[0]] = exc.actual
            extensions[names[1]] = exc.limit
    return extensions


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def rest_error_headers(exc: BaseException) -> list[tuple[str, str]]:
    """Headers that go with ``exc``'s status (WWW-Authenticate, Retry-After, Allow, ...)."""
    headers: list[tuple[str, str]] = []
    if isinstance(exc, Unauthenticated):
        headers.append(("www-authenticate", f'{exc.scheme} realm="bff"'))
    elif isinstance(exc, RateLimited | UpstreamUnavailable | ServiceUnavailable):
        headers.append(("retry-after", _retry_after(exc.retry_after)))
    elif isinstance(exc, MethodNotAllowed):
        headers.append(("allow", ", ".join(exc.allow)))
    elif isinstance(exc, PersistedQueryNotFound | PersistedQueryNotSupported):
        # As Apollo Server: never cached, since the client is about to register the query.
        headers.append(("cache-control", "private, no-cache, must-revalidate"))
    if isinstance(exc, GatewayError):
        headers.extend(exc.headers.items())
    return headers


def rest_error(
    exc: BaseException, request_id: str | None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and JSON body for a REST error answer."""
    if isinstance(exc, GatewayError):
        code, message = exc.code, exc.message
    else:
        code, message = "INTERNAL_SERVER_ERROR", "internal server error"
    body = orjson.dumps({"error": {"code": code, "message": message, "request_id": request_id}})
    headers = [("content-type", "application/json"), *rest_error_headers(exc)]
    return http_status(exc), headers, body
