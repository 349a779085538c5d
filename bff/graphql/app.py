"""One GraphQL BFF app (``/graphql/web``, ...) as a pure ASGI application.

GraphQL over HTTP as clients expect it: POST with a JSON body ``{query, variables,
operationName, extensions}`` (or ``application/graphql``), GET with query parameters for queries
(a mutation over GET is 405), ``application/graphql-response+json`` or ``application/json``
answers, GraphiQL on a browser's GET when the app enables it. Every bad input is a 400 with a
GraphQL-shaped body, never a 500.

Delivery: persisted queries (:mod:`bff.graphql.persisted`), CBOR requests and answers on apps
whose ``encodings`` include it (:mod:`bff.graphql.cbor`), ``Cache-Control`` from the cache hints
(:mod:`bff.graphql.cache_policy`), whole answers cached for anonymous callers
(:mod:`bff.graphql.response_cache`) with ``ETag``/``If-None-Match``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import orjson
from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
    get_variable_values,
)
from graphql.execution.incremental.incremental_executor import IncrementalExecutor

from bff.asgi import Receive, Scope, Send, header, read_body, send_response
from bff.auth.principal import ANONYMOUS, PRINCIPAL_KEY, Principal
from bff.cache import CachedResponse, CacheStore, SingleFlight, none_match, parse_if_none_match
from bff.error_mapping import http_status, rest_error_headers
from bff.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotAcceptable,
    Unauthenticated,
    UnsupportedMediaType,
)
from bff.graphql import cbor
from bff.graphql.cache_policy import NOT_CACHEABLE, CachePolicy, operation_policy
from bff.graphql.compiled import Unsupported, compile_operation
from bff.graphql.context import ClientCache, Context
from bff.graphql.documents import DocumentCache, PreparedDocument
from bff.graphql.errors import format_error, request_error
from bff.graphql.limits import CostControl
from bff.graphql.loader_cache import LoaderCache
from bff.graphql.operations import OperationCatalogue
from bff.graphql.persisted import Mode, PersistedQueries, Resolved, sha256_hex
from bff.graphql.registry import LoaderSpec, TypeOptions
from bff.graphql.response_cache import ResponseCache
from bff.observability.context import note_operation, span
from bff.ratelimit import RATE_LIMIT_KEY
from bff.upstream.deadline import deadline
from bff.upstream.recorder import RequestTally, tally_requests

__all__ = ["GraphQLApp", "GraphQLAppSettings", "GraphQLRequest", "Outcome"]

log = logging.getLogger("bff.graphql")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
CBOR = cbor.CBOR
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
    #: off | apq | only (bff.graphql.persisted); apq_ttl: seconds an APQ document is kept.
    persisted_queries: Mode = "off"
    apq_ttl: float = 86_400.0
    #: Response encodings offered besides JSON ("cbor").
    encodings: tuple[str, ...] = ("json",)
    #: Cache whole answers to anonymous, publicly cacheable queries (needs a cache store).
    response_cache: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GraphQLRequest:
    """A GraphQL request as read off the wire (``query`` is empty when only a persisted-query
    hash was sent)."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def _negotiate(accept: bytes | None, *, allow_html: bool, allow_cbor: bool = False) -> str:
    """The response media type for ``Accept`` (raises :class:`NotAcceptable`)."""
    if not accept:
        return JSON
    offers = [GRAPHQL_RESPONSE_JSON, JSON]
    if allow_html:
        offers.append("text/html")
    if allow_cbor:
        offers.append(CBOR)
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
        if not isinstance(extensions, dict) or extensions.get("persistedQuery") is None:
            raise BadRequest("the request has no 'query'")
        query = ""  # the persisted-query hash stands for it
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


@dataclass(slots=True)
class Outcome:
    """The answer to one operation: ``status`` and ``body``, the cache ``policy`` of the
    response, and, when it went through the response cache, the stored ``entry`` (``body`` is
    then ``None`` when the entry's bytes are the answer as they stand) and whether it was a
    ``hit``."""

    status: int
    body: dict[str, Any] | None
    policy: CachePolicy = NOT_CACHEABLE
    entry: CachedResponse | None = None
    hit: bool = False


def _failed(status: int, body: Mapping[str, Any]) -> bool:
    """Errors or stale values: such an answer is never cached."""
    if status != 200 or "errors" in body:
        return True
    extensions = body.get("extensions")
    return bool(extensions and extensions.get("degraded"))


class _StaleAwareExecutor(IncrementalExecutor):
    """graphql-core's executor, reporting where values served stale land (as the compiled
    plans do): their paths go to ``extensions.degraded``."""

    def complete_object_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        stale = getattr(self.context_value, "stale", None)
        if stale and id(result) in stale:
            self.context_value.stale_at(path.as_list())
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )


class GraphQLApp:
    """The ASGI app of one frontend's GraphQL endpoint.

    ``cache``: the process's cache store (APQ documents, whole responses); ``operations``: the
    registered operations; ``type_options``: the registry's type-level cache hints;
    ``loader_cache``: loader values kept across requests.
    """

    def __init__(
        self,
        settings: GraphQLAppSettings,
        schema: GraphQLSchema,
        *,
        loaders: dict[str, LoaderSpec],
        clients: ClientCache,
        cache: CacheStore | None = None,
        operations: OperationCatalogue | None = None,
        type_options: Mapping[str, TypeOptions] | None = None,
        loader_cache: LoaderCache | None = None,
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
        mode = settings.persisted_queries
        if mode == "apq" and cache is None:
            log.warning("app %s: automatic persisted queries need a cache store", settings.name)
            mode = "off"
        self.persisted = PersistedQueries(
            mode, app=settings.name, store=cache, catalogue=operations, ttl=settings.apq_ttl
        )
        self.type_options = dict(type_options or {})
        self.loader_cache = loader_cache
        self.response_cache = (
            ResponseCache(cache, settings.name)
            if cache is not None and settings.response_cache
            else None
        )
        self.flight = SingleFlight()
        self._cbor = "cbor" in settings.encodings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        media = JSON
        try:
            if method == "POST":
                media = _negotiate(
                    header(scope, b"accept"), allow_html=False, allow_cbor=self._cbor
                )
                request = await self._read_post(scope, receive)
            elif method in ("GET", "HEAD"):
                media = _negotiate(
                    header(scope, b"accept"),
                    allow_html=self.settings.graphiql,
                    allow_cbor=self._cbor,
                )
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
            if_none_match = header(scope, b"if-none-match")
            condition = parse_if_none_match(if_none_match) if if_none_match is not None else None
            if isinstance(request, list):
                status, bodies = await self.run_batch(request, scope)
                await send_response(
                    send,
                    status,
                    self._encode(bodies, media),
                    [("content-type", media), ("cache-control", "no-store")],
                )
                return
            outcome = await self.process(request, scope, get=method != "POST", media=media)
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
        await self._send_outcome(send, outcome, media, condition if method != "POST" else None)

    async def _send_outcome(self, send: Send, outcome: Outcome, media: str, condition: Any) -> None:
        policy = outcome.policy
        headers = [("content-type", media), ("cache-control", policy.header())]
        if policy.cacheable:
            headers.append(("vary", "Accept"))
        entry = outcome.entry
        if entry is not None:
            etag = entry.header("etag") or ""
            headers += [
                ("etag", etag),
                ("age", str(entry.age())),
                ("x-cache", "HIT" if outcome.hit else "MISS"),
            ]
            if condition is not None and etag and none_match(condition, etag):
                await send_response(send, 304, b"", headers[1:])
                return
            if outcome.body is None:
                await send_response(send, outcome.status, entry.body, headers)
                return
        assert outcome.body is not None
        await send_response(send, outcome.status, self._encode(outcome.body, media), headers)

    @staticmethod
    def _encode(body: Any, media: str) -> bytes:
        return cbor.encode(body) if media == CBOR else orjson.dumps(body)

    @staticmethod
    def _decode(raw: bytes, media: str) -> dict[str, Any]:
        value: dict[str, Any] = cbor.decode_request(raw) if media == CBOR else orjson.loads(raw)
        return value

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
        if ctype == b"application/cbor" and self._cbor:
            data = cbor.decode_request(body)
            if isinstance(data, list):
                return _parse_batch(data, self.settings.max_batch_operations)
            if not isinstance(data, dict):
                raise BadRequest("the request body must be a CBOR map")
            return _request_from_mapping(data, from_query_string=False)
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
        outcome = await self.process(request, scope, get=get)
        assert outcome.body is not None  # without a media type nothing comes from the cache
        return outcome.status, outcome.body

    async def process(
        self,
        request: GraphQLRequest,
        scope: Scope,
        *,
        get: bool = False,
        media: str | None = None,
    ) -> Outcome:
        """Prepare and execute ``request``: persisted-query lookup, parse and validate (cached),
        cost control, execution. ``media`` is the answer's media type when it goes out over
        HTTP, which lets an anonymous cacheable query be answered from the response cache."""
        principal: Principal = scope.get(PRINCIPAL_KEY) or ANONYMOUS
        if self.settings.auth == "required" and not principal.is_authenticated:
            raise Unauthenticated("this endpoint requires authentication")
        if self.settings.auth == "api_key" and principal.kind != "api_key":
            raise Unauthenticated("this endpoint requires an API key", scheme="ApiKey")

        # Before parsing: on an allow-listed app, nothing else gets that far.
        resolved = await self.persisted.resolve(request.query, request.extensions)
        if resolved.query is not request.query:
            request = replace(request, query=resolved.query)
        prepared = self.documents.get(request.query)
        if prepared.errors:
            errors = [format_error(e, prepared.error_code) for e in prepared.errors]
            return Outcome(400, {"errors": errors})
        if resolved.register is not None:
            await self.persisted.register(resolved)
        operation = prepared.operation(request.operation_name)
        if operation is None:
            message = (
                f"Unknown operation named '{request.operation_name}'."
                if request.operation_name
                else "Must provide operation name if query contains multiple operations."
            )
            return Outcome(400, {"errors": [request_error(message, "BAD_REQUEST")]})
        if get and prepared.is_mutation(request.operation_name):
            raise MethodNotAllowed("mutations must be sent with POST", allow=["POST"])
        note_operation(
            self.settings.name,
            operation.name.value if operation.name else None,
            operation.operation.value,
        )
        policy = self._cache_policy(prepared, operation)
        if (
            media is not None
            and self.response_cache is not None
            and policy.shareable
            and not principal.is_authenticated
            and self.settings.auth == "optional"
        ):
            return await self._through_cache(
                prepared, operation, request, resolved, principal, scope, media, policy
            )
        status, body = await self.cost_control.guard(
            prepared,
            operation,
            request.variables,
            scope,
            lambda: self.execute(prepared, request, principal, scope),
            vetted=resolved.vetted,
        )
        personal = principal.is_authenticated or self.settings.auth != "optional"
        return Outcome(
            status, body, policy.for_response(failed=_failed(status, body), personal=personal)
        )

    async def _through_cache(
        self,
        prepared: PreparedDocument,
        operation: OperationDefinitionNode,
        request: GraphQLRequest,
        resolved: Resolved,
        principal: Principal,
        scope: Scope,
        media: str,
        policy: CachePolicy,
    ) -> Outcome:
        """Answer an anonymous, publicly cacheable query from the response cache, or execute
        it once for every concurrent request missing the same entry (single-flight).

        A hit is charged the operation's cost like any request (the quota is about what is
        asked); where nothing charges the request, the stored bytes are sent as they stand.
        """
        cache = self.response_cache
        assert cache is not None
        document_hash = resolved.hash or self._document_hash(prepared)
        key = cache.key(document_hash, request.operation_name, request.variables, media)
        metered = scope.get(RATE_LIMIT_KEY) is not None
        served: list[Any] = [None, False]  # the entry answered with, and whether it was a hit
        as_stored: dict[str, Any] = {}  # stands for the entry's bytes when nothing is added

        async def fill() -> tuple[int, dict[str, Any], CachedResponse | None]:
            status, body = await self.execute(prepared, request, principal, scope)
            final = policy.for_response(failed=_failed(status, body), personal=False)
            entry = None
            if final.shareable:
                entry = await cache.put(key, status, self._encode(body, media), media, final)
            return status, body, entry

        async def answer() -> tuple[int, dict[str, Any]]:
            entry = await cache.get(key)
            if entry is not None:
                served[:] = [entry, True]
                return entry.status, self._decode(entry.body, media) if metered else as_stored
            status, body, entry = await self.flight.do(key, fill)
            served[0] = entry
            if entry is not None and not metered:
                return status, as_stored
            # Shared with the other requests of the flight: copied before cost control adds
            # this request's own charge to it.
            mine = dict(body)
            if "extensions" in mine:
                mine["extensions"] = dict(mine["extensions"])
            return status, mine

        status, body = await self.cost_control.guard(
            prepared, operation, request.variables, scope, answer, vetted=resolved.vetted
        )
        entry, hit = served
        if entry is None:
            return Outcome(status, body, policy.for_response(failed=True, personal=False))
        stored_policy = CachePolicy(int(entry.max_age))
        return Outcome(
            status, None if body is as_stored else body, stored_policy, entry=entry, hit=hit
        )

    def _cache_policy(
        self, prepared: PreparedDocument, operation: OperationDefinitionNode
    ) -> CachePolicy:
        """The operation's cache policy from its hints, worked out once per document."""
        key = ("cache_policy", operation.name.value if operation.name else None)
        policy = prepared.analysis.get(key)
        if policy is None:
            assert prepared.document is not None
            fragments = {
                d.name.value: d
                for d in prepared.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            policy = operation_policy(self.schema, operation, fragments, self.type_options)
            prepared.analysis[key] = policy
        return policy  # type: ignore[return-value]

    def _document_hash(self, prepared: PreparedDocument) -> str:
        found = prepared.analysis.get("sha256")
        if found is None:
            assert prepared.document is not None and prepared.document.loc is not None
            found = prepared.analysis["sha256"] = sha256_hex(prepared.document.loc.source.body)
        return found  # type: ignore[return-value]

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
            loader_cache=self.loader_cache,
        )
        assert prepared.document is not None
        plan = self._plan(prepared, request.operation_name) if self.settings.compiled else None
        with (
            deadline(self.settings.timeout),
            span("graphql.execute", {"bff.app": self.settings.name, "bff.compiled": bool(plan)}),
        ):
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
                    executor_class=_StaleAwareExecutor,
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
        body = self._encode({"errors": [request_error(message, code)]}, media)
        extra = [h for h in headers or () if h[0] != "content-type"]
        hdrs = [("content-type", media)]
        if not any(name == "cache-control" for name, _ in extra):
            hdrs.append(("cache-control", "no-store"))
        hdrs.extend(extra)
        await send_response(send, status, body, hdrs)
