"""GraphQL error entries: typed errors become ``extensions.code``; the rest is masked."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from bff.error_mapping import graphql_code
from bff.errors import GatewayError

__all__ = ["format_error", "request_error"]

log = logging.getLogger("bff.graphql")

_MASKED = "Internal server error"


def format_error(err: GraphQLError, code: str | None = None) -> dict[str, Any]:
    """One entry of a response's ``errors`` list.

    A :class:`GatewayError` raised in a resolver keeps its (safe) message and code; any other
    exception is logged with its traceback and reaches the client as INTERNAL_SERVER_ERROR.
    """
    original = err.original_error
    if original is None or isinstance(original, GraphQLError):
        message = err.message
        code = code or "INTERNAL_SERVER_ERROR"
    elif isinstance(original, GatewayError):
        message = original.message
        code = original.code
    else:
        log.error(
            "resolver failed at %s",
            ".".join(str(p) for p in err.path or ()),
            exc_info=(type(original), original, original.__traceback__),
        )
        message = _MASKED
        code = graphql_code(original)
    entry: dict[str, Any] = {"message": message}
    if err.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in err.locations]
    if err.path:
        entry["path"] = err.path
    entry["extensions"] = {"code": code}
    return entry


def request_error(message: str, code: str) -> dict[str, Any]:
    """An error entry for a request the gateway refused before executing it."""
    return {"message": message, "extensions": {"code": code}}
