"""One GraphQL BFF app (``/graphql/web``, ...) as a pure ASGI application.

GraphQL over HTTP as clients expect it: POST with a JSON body ``{query, variables,
operationName, extensions}`` (or ``application/graphql``), GET with query parameters for queries
(a mutation over GET is 405), ``application/graphql-response+json`` or ``application/json``
answers, GraphiQL on a browser's GET when the app enables it. Every bad input is a 400 with a
GraphQL-shaped body, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import orjson
from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLSchema,
    execute,
    get_variable_values,
)

from bff.asgi import Receive, Scope, Send, header, read_body, send_response
from bff.auth.principal import ANONYMOUS, PRINCIPAL_KEY, Principal
from bff.error_mapping import http_status, rest_error_headers
from bff.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotAcceptable,
    Unauthenticated,
    UnsupportedMediaType,
)
from bff.graphql.compiled import Unsupported, compile_operation
from bff.graphql.context import ClientCache, Context
from bff.graphql.documents import DocumentCache, PreparedDocument
from bff.graphql.errors import format_error, request_error
from bff.graphql.limits import CostControl
from bff.graphql.registry import LoaderSpec
from bff.upstream.deadline import deadline
from bff.upstream.recorder import RequestTally, tally_requests

__all__ = ["GraphQLApp", "GraphQLAppSettings", "GraphQLRequest"]

log = logging.getLogger("bff.graphql")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_GRAPHIQL_HTML: bytes | None = None
_MISSING = object()


def _graphiql_page(path: str) -> bytes:
    global _GRAPHIQL_HTML
    if _GRAPHIQL_HTML is None:
        _GRAPHIQL_HTML = resources.files("bff.graphql").joinpath("graphiql.html").read_bytes()
    return _GRAPHIQL_HTML.replace(b"{{ENDPOINT}}", orjson.dumps(path))


@dataclass(frozen=True)
class GraphQLAppSettings:
    """What one app needs from the configuration (``graphql.apps.<name>``)."""

    name: str
    path: str
    auth: str = "optional"
    graphiql: bool = False
    timeout: float = 30.0
    max_body_bytes: int = 1024 * 1024
    max_tokens: int = 5000
    document_cache_bytes: int = 16 * 1024 * 1024
    hide_suggestions: bool = False
    #: Run hot documents through compiled plans (graphql-core executes the rest).
    compiled: bool = True
    #: Development mode: warn when one request calls one upstream endpoint more often.
    n_plus_one_threshold: int | None = None
    #: Cost control (bff.graphql.limits); an operation counts as ceil(cost / cost_per_request)
    #: requests against the caller's rate limit.
    max_depth: int = 10
    max_aliases: int = 30
    max_root_fields: int = 20
    max_cost: int = 10_000
    cost_per_request: int = 50
    #: Operation batching: most operations in one JSON array body (0: batching is off).
    max_batch_operations: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GraphQLRequest:
    """A GraphQL request as read off the wire."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def _negotiate(accept: bytes | None, *, allow_html: bool) -> str:
    """The response media type for ``Accept`` (raises :class:`NotAcceptable`)."""
    if not accept:
        return JSON
    offers = [GRAPHQL_RESPONSE_JSON, JSON]
    if allow_html:
        offers.append("text/html")
    best, best_q = "", 0.0
    for part in accept.decode("latin-1").split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q <= best_q:
            continue
        if media in ("*/*", "application/*"):
            best, best_q = JSON, q
        elif media in offers:
            best, best_q = media, q
    if not best:
        raise NotAcceptable("the Accept header names no media type this endpoint can produce")
    return best


def _parse_json_request(body: bytes, max_batch: int = 0) -> GraphQLRequest | list[GraphQLRequest]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the request body is not valid JSON") from None
    if isinstance(data, list):
        return _parse_batch(data, max_batch)
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return _request_from_mapping(data, from_query_string=False)


def _parse_batch(data: list[Any], max_batch: int) -> list[GraphQLRequest]:
    if not max_batch:
        raise BadRequest("batched operations (a JSON array body) are not enabled on this endpoint")
    if not data:
        raise BadRequest("the batch holds no operation")
    if len(data) > max_batch:
        raise BadRequest(f"a batch holds at most {max_batch} operations (got {len(data)})")
    if not all(isinstance(item, dict) for item in data):
        raise BadRequest("each operation of a batch must be a JSON object")
    return [_request_from_mapping(item, from_query_string=False) for item in data]


def _request_from_mapping(data: Mapping[str, Any], *, from_query_string: bool) -> GraphQLRequest:
    query = data.get("query")
    variables = data.get("variables")
    operation_name = data.get("operationName")
    extensions = data.get("extensions")
    if from_query_string:
        variables = _json_param("variables", variables)
        extensions = _json_param("extensions", extensions)
    if query is None or query == "":
        raise BadRequest("the request has no 'query'")
    if not isinstance(query, str):
        raise BadRequest("'query' must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("'operationName' must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest("'extensions' must be an object")
    return GraphQLRequest(query, variables, operation_name or None, extensions)


def _json_param(name: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadRequest(f"the '{name}' parameter is not valid JSON") from None


class GraphQLApp:
    """The ASGI app of one frontend's GraphQL endpoint."""

    def __init__(
        self,
        settings: GraphQLAppSettings,
        schema: GraphQLSchema,
        *,
        loaders: dict[str, LoaderSpec],
        clients: ClientCache,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.loaders = loaders
        self.clients = clients
        self.documents = DocumentCache(
            schema,
            max_bytes=settings.document_cache_bytes,
            max_tokens=settings.max_tokens,
            hide_suggestions=settings.hide_suggestions,
        )
        self.cost_control = CostControl.for_app(schema, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        media = JSON
        try:
            if method == "POST":
                media = _negotiate(header(scope, b"accept"), allow_html=False)
                request = await self._read_post(scope, receive)
            elif method in ("GET", "HEAD"):
                media = _negotiate(header(scope, b"accept"), allow_html=self.settings.graphiql)
                if media == "text/html":
                    await send_response(
                        send,
                        200,
                        _graphiql_page(scope.get("root_path", "") + self.settings.path),
                        [("content-type", "text/html; charset=utf-8")],
                    )
                    return
                request = self._read_get(scope)
            else:
                raise MethodNotAllowed(
                    "GraphQL endpoints accept GET and POST", allow=["GET", "POST"]
                )
            body: dict[str, Any] | list[dict[str, Any]]
            if isinstance(request, list):
                status, body = await self.run_batch(request, scope)
            else:
                status, body = await self.run(request, scope, get=method != "POST")
        except GatewayError as exc:
            await self._send_error(
                send,
                http_status(exc),
                media if media != "text/html" else JSON,
                exc.message,
                "BAD_REQUEST" if isinstance(exc, BadRequest) else exc.code,
                rest_error_headers(exc),
            )
            return
        await send_response(
            send,
            status,
            orjson.dumps(body),
            [("content-type", media), ("cache-control", "no-store")],
        )

    async def _read_post(
        self, scope: Scope, receive: Receive
    ) -> GraphQLRequest | list[GraphQLRequest]:
        body = await read_body(receive, scope, self.settings.max_body_bytes)
        ctype = (header(scope, b"content-type") or b"application/json").split(b";")[0].strip()
        ctype = ctype.lower()
        if ctype in (b"application/json", b"application/graphql-response+json", b""):
            return _parse_json_request(body, self.settings.max_batch_operations)
        if ctype == b"application/graphql":
            try:
                query = body.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("the request body is not valid UTF-8") from None
            return _request_from_mapping({"query": query}, from_query_string=False)
        raise UnsupportedMediaType()

    def _read_get(self, scope: Scope) -> GraphQLRequest:
        try:
            qs = scope.get("query_string", b"").decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the query string is not valid UTF-8") from None
        params = {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        return _request_from_mapping(params, from_query_string=True)

    async def run(
        self, request: GraphQLRequest, scope: Scope, *, get: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """Prepare and execute ``request``; returns the HTTP status and the response body."""
        principal: Principal = scope.get(PRINCIPAL_KEY) or ANONYMOUS
        if self.settings.auth == "required" and not principal.is_authenticated:
            raise Unauthenticated("this endpoint requires authentication")
        if self.settings.auth == "api_key" and principal.kind != "api_key":
            raise Unauthenticated("this endpoint requires an API key", scheme="ApiKey")

        prepared = self.documents.get(request.query)
        if prepared.errors:
            return 400, {"errors": [format_error(e, prepared.error_code) for e in prepared.errors]}
        operation = prepared.operation(request.operation_name)
        if operation is None:
            message = (
                f"Unknown operation named '{request.operation_name}'."
                if request.operation_name
                else "Must provide operation name if query contains multiple operations."
            )
            return 400, {"errors": [request_error(message, "BAD_REQUEST")]}
        if get and prepared.is_mutation(request.operation_name):
            raise MethodNotAllowed("mutations must be sent with POST", allow=["POST"])
        return await self.cost_control.guard(
            prepared,
            operation,
            request.variables,
            scope,
            lambda: self.execute(prepared, request, principal, scope),
        )

    async def run_batch(
        self, requests: list[GraphQLRequest], scope: Scope
    ) -> tuple[int, list[dict[str, Any]]]:
        """Run a batch's operations concurrently, each with its own result or error (and its
        own rate-limit charge). The status is the operations' common one, else 200."""

        async def one(request: GraphQLRequest) -> tuple[int, dict[str, Any]]:
            try:
                return await self.run(request, scope)
            except GatewayError as exc:
                code = "BAD_REQUEST" if isinstance(exc, BadRequest) else exc.code
                return http_status(exc), {"errors": [request_error(exc.message, code)]}

        results = await asyncio.gather(*(one(r) for r in requests))
        statuses = {status for status, _ in results}
        return (statuses.pop() if len(statuses) == 1 else 200), [body for _, body in results]

    async def execute(
        self,
        prepared: PreparedDocument,
        request: GraphQLRequest,
        principal: Principal,
        scope: Scope,
    ) -> tuple[int, dict[str, Any]]:
        """Execute a prepared, valid document."""
        context = Context(
            app=self.settings.name,
            loaders=self.loaders,
            clients=self.clients,
            principal=principal,
        )
        assert prepared.document is not None
        plan = self._plan(prepared, request.operation_name) if self.settings.compiled else None
        with deadline(self.settings.timeout):
            if plan is not None:
                variables = get_variable_values(
                    self.schema,
                    plan.operation.variable_definitions or (),
                    request.variables or {},
                    max_errors=50,
                    hide_suggestions=self.settings.hide_suggestions,
                )
                if isinstance(variables, list):
                    return 400, {"errors": [format_error(e, "BAD_USER_INPUT") for e in variables]}
                if self.settings.n_plus_one_threshold is None:
                    data, errors = await plan.execute(context, variables)
                else:
                    with tally_requests() as tally:
                        data, errors = await plan.execute(context, variables, trace_origins=True)
                    self._warn_n_plus_one(tally, request)
            else:
                result = execute(
                    self.schema,
                    prepared.document,
                    context_value=context,
                    variable_values=request.variables,
                    operation_name=request.operation_name,
                    hide_suggestions=self.settings.hide_suggestions,
                )
                if not isinstance(result, ExecutionResult):
                    result = await result
                data, errors = result.data, result.errors or []
                if errors and data is None and all(e.path is None for e in errors):
                    # Variable coercion or operation selection failed: a request error.
                    return 400, {"errors": [format_error(e, "BAD_USER_INPUT") for e in errors]}
        body: dict[str, Any] = {}
        status = 200
        if errors:
            body["errors"] = [format_error(e) for e in errors]
        body["data"] = data
        if context.degraded:
            context.extensions["degraded"] = context.degraded
        if context.extensions:
            body["extensions"] = context.extensions
        return status, body

    def _warn_n_plus_one(self, tally: RequestTally, request: GraphQLRequest) -> None:
        threshold = self.settings.n_plus_one_threshold or 0
        for upstream, template, origin, count in tally.over(threshold):
            log.warning(
                "possible N+1 in %s: field %s sent %d requests to %s %s in one request "
                "(more than %d); load it through a batch loader",
                self.settings.name,
                origin or "(unknown)",
                count,
                upstream,
                template,
                threshold,
                extra={"operation": request.operation_name},
            )

    def _plan(self, prepared: PreparedDocument, operation_name: str | None) -> Any:
        """The compiled plan of an operation, or ``None`` where graphql-core executes it."""
        key = ("plan", operation_name)
        plan = prepared.analysis.get(key, _MISSING)
        if plan is _MISSING:
            operation = prepared.operation(operation_name)
            assert prepared.document is not None and operation is not None
            fragments = {
                d.name.value: d
                for d in prepared.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            try:
                plan = compile_operation(self.schema, operation, fragments)
            except Unsupported as why:
                log.debug("executing with graphql-core: %s", why)
                plan = None
            prepared.analysis[key] = plan
        return plan

    async def _send_error(
        self,
        send: Send,
        status: int,
        media: str,
        message: str,
        code: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        body = orjson.dumps({"errors": [request_error(message, code)]})
        hdrs = [("content-type", media), ("cache-control", "no-store")]
        hdrs.extend(h for h in headers or () if h[0] != "content-type")
        await send_response(send, status, body, hdrs)
