"""The four sample services as thin pure-ASGI apps.

No framework: routing is a few string comparisons and every 200 body is assembled from JSON bytes
precomputed in :mod:`services.data`, because these apps are the upstreams of gateway benchmarks and
must stay far cheaper than the gateway they feed.

Routes of every app, besides its own (see ``services.md``):

- ``GET /health`` -> ``{"status": "ok"}``
- ``GET /_stats`` -> ``{"requests": n, "by_path": {template: n, ..., "other": n}}``
- ``POST /_reset`` -> 204, counters zeroed (created orders are kept)
- ``GET|POST /_latency?ms=N`` -> ``{"latency_ms": N}``, reads or sets the injected latency

Only the service's own routes and unmatched paths are counted; the aids above are not.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import unquote_to_bytes

import orjson

from services import data

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_BATCH_IDS",
    "MAX_BODY_BYTES",
    "MAX_LIMIT",
    "SERVICE_NAMES",
    "HTTPError",
    "OrdersApp",
    "ProductsApp",
    "ReviewsApp",
    "ServiceApp",
    "UsersApp",
    "create_app",
    "id_key",
    "parse_ids",
    "parse_query",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

SERVICE_NAMES = ("users", "orders", "products", "reviews")
"""The services, in port order: ``run_all`` puts service ``n`` on ``port_base + n``."""

MAX_BATCH_IDS = 100
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_BODY_BYTES = 1 << 20
"""Larger ``POST /orders`` bodies get 413: nothing legitimate comes close."""

# Python refuses to parse longer decimal strings; anything this long is not an id anyway.
_MAX_DIGITS = 4000

_CONTENT_TYPE = (b"content-type", b"application/json")
_HEALTH_BODY = b'{"status":"ok"}'
_OTHER = "other"


class HTTPError(Exception):
    """An error response: ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: Headers | None = None):
        super().__init__(message)
        self.status = status
        self.body = orjson.dumps({"error": code, "message": message})
        self.headers = headers


def _bad_request(message: str) -> HTTPError:
    return HTTPError(400, "bad_request", message)


def _method_not_allowed(method: str, path: str, allow: str) -> HTTPError:
    return HTTPError(
        405,
        "method_not_allowed",
        f"{method} is not allowed on {path}; allowed: {allow}",
        [(b"allow", allow.encode())],
    )


def _not_found(message: str) -> HTTPError:
    return HTTPError(404, "not_found", message)


def parse_query(query_string: bytes) -> dict[bytes, bytes]:
    """Split a raw query string into decoded keys and values; a repeated key keeps its last value.

    Clients differ on escaping commas (httpx sends ``%2C``, others send ``,``), so values are
    percent-decoded, but only when there is something to decode.
    """
    params: dict[bytes, bytes] = {}
    if not query_string:
        return params
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        if b"%" in pair or b"+" in pair:
            key = unquote_to_bytes(key.replace(b"+", b" "))
            value = unquote_to_bytes(value.replace(b"+", b" "))
        params[key] = value
    return params


def id_key(i: int) -> bytes:
    """The key of id ``i`` in the apps' tables: its decimal digits, as bytes."""
    return str(i).encode()


def _keyed(table: Mapping[int, bytes]) -> dict[bytes, bytes]:
    return {id_key(i): blob for i, blob in table.items()}


def parse_ids(raw: bytes, name: str) -> list[bytes]:
    """Distinct ids of a ``1,2,3`` list as keys (see :func:`id_key`), in first-seen order.

    400 unless ``raw`` matches ``^[0-9]+(,[0-9]+)*$`` and has at most MAX_BATCH_IDS distinct ids
    (the cap bounds the work and the response, not the spelling).

    Ids stay bytes: tables are keyed by the digits, which spares an int() per id, the largest
    cost of a batch request once everything else is precomputed.
    """
    tokens = raw.split(b",")
    # bytes.isdigit() is ASCII-only, and an empty token means a stray comma.
    if not raw.replace(b",", b"").isdigit() or b"" in tokens:
        raise _bad_request(f"{name} must match ^[0-9]+(,[0-9]+)*$")
    if raw[0] == 0x30 or b",0" in raw:  # leading zeros: "007" is id 7
        tokens = [token.lstrip(b"0") or b"0" for token in tokens]
    ids = list(dict.fromkeys(tokens))
    if len(ids) > MAX_BATCH_IDS:
        raise _bad_request(f"{name} has {len(ids)} ids; at most {MAX_BATCH_IDS} are allowed")
    return ids


def _parse_uint(params: dict[bytes, bytes], name: str, default: int, maximum: int | None) -> int:
    raw = params.get(name.encode())
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > _MAX_DIGITS:
        raise _bad_request(f"{name} must be a non-negative integer")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise _bad_request(f"{name} must be between 0 and {maximum}")
    return value


def _items(parts: list[bytes]) -> bytes:
    return b'{"items":[' + b",".join(parts) + b"]}"


async def _respond(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    response_headers = [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())]
    if headers:
        response_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


async def _respond_no_content(send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "bad_request", "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "payload_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class ServiceApp:
    """Base of the four apps: routing, request counting, injected latency, test aids.

    Subclasses set ``name`` and ``prefix`` (the collection path, e.g. ``/users``),
    ``has_item_route`` for ``{prefix}/{id}``, and implement the handlers they route to.

    The counters are plain attributes: an app lives on one event loop, so there is nothing to lock.
    """

    name: str = ""
    prefix: str = ""
    has_item_route: bool = True
    collection_methods: str = "GET"

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.latency_ms = _check_latency(latency_ms)
        self._item_prefix = self.prefix + "/"
        self._item_template = self.prefix + "/{id}"
        self.templates: tuple[str, ...] = (self.prefix,) + (
            (self._item_template,) if self.has_item_route else ()
        )
        self._requests = 0
        self._by_path: dict[str, int] = {}
        self.reset()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} latency_ms={self.latency_ms}>"

    def stats(self) -> dict[str, Any]:
        """Counters as served by ``GET /_stats``: ``{"requests": n, "by_path": {...}}``."""
        return {"requests": self._requests, "by_path": dict(self._by_path)}

    def reset(self) -> None:
        """Zero the counters, as ``POST /_reset`` does. Created orders are kept."""
        self._requests = 0
        self._by_path = dict.fromkeys((*self.templates, _OTHER), 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        kind = scope["type"]
        if kind != "http":
            await self._not_http(kind, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]

        if path == self.prefix:
            template = self.prefix
        elif (
            self.has_item_route
            and path.startswith(self._item_prefix)
            and len(path) > len(self._item_prefix)
            and "/" not in path[len(self._item_prefix) :]
        ):
            template = self._item_template
        elif path in _AID_PATHS:
            await self._aid(path, method, scope, send)
            return
        else:
            template = _OTHER

        self._requests += 1
        self._by_path[template] += 1
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)

        try:
            if template == _OTHER:
                raise _not_found(f"no route for {path}")
            if template == self.prefix:
                if method == "GET":
                    await _respond(send, 200, self.handle_list(parse_query(scope["query_string"])))
                elif method == "POST" and "POST" in self.collection_methods:
                    status, body, headers = await self.handle_create(receive)
                    await _respond(send, status, body, headers)
                else:
                    raise _method_not_allowed(method, path, self.collection_methods)
            elif method == "GET":
                await _respond(send, 200, self.handle_get(path[len(self._item_prefix) :]))
            else:
                raise _method_not_allowed(method, path, "GET")
        except HTTPError as exc:
            await _respond(send, exc.status, exc.body, exc.headers)

    def handle_list(self, params: dict[bytes, bytes]) -> bytes:
        """Body of ``GET {prefix}`` for the decoded query ``params``; raises :class:`HTTPError`."""
        raise NotImplementedError

    def handle_get(self, raw_id: str) -> bytes:
        """Body of ``GET {prefix}/{raw_id}``; raises :class:`HTTPError` (404 for unknown ids)."""
        raise NotImplementedError

    async def handle_create(self, receive: Receive) -> tuple[int, bytes, Headers | None]:
        """Status, body and extra headers of ``POST {prefix}``, for apps that accept it."""
        raise NotImplementedError

    def _item_key(self, raw_id: str) -> bytes:
        # A non-numeric id names no entity, so it is a 404 like any other unknown id.
        if not (raw_id.isascii() and raw_id.isdigit()):
            raise _not_found(f"no {self.name[:-1]} {raw_id!r}")
        return (raw_id.lstrip("0") or "0").encode()

    async def _aid(self, path: str, method: str, scope: Scope, send: Send) -> None:
        try:
            if path == "/health":
                if method != "GET":
                    raise _method_not_allowed(method, path, "GET")
                await _respond(send, 200, _HEALTH_BODY)
            elif path == "/_stats":
                if method != "GET":
                    raise _method_not_allowed(method, path, "GET")
                await _respond(send, 200, orjson.dumps(self.stats()))
            elif path == "/_reset":
                if method != "POST":
                    raise _method_not_allowed(method, path, "POST")
                self.reset()
                await _respond_no_content(send)
            else:  # /_latency
                if method == "POST":
                    raw = parse_query(scope["query_string"]).get(b"ms")
                    if raw is None:
                        raise _bad_request("ms is required")
                    try:
                        self.latency_ms = _check_latency(float(raw))
                    except ValueError:
                        raise _bad_request("ms must be a finite number >= 0") from None
                elif method != "GET":
                    raise _method_not_allowed(method, path, "GET, POST")
                await _respond(send, 200, orjson.dumps({"latency_ms": self.latency_ms}))
        except HTTPError as exc:
            await _respond(send, exc.status, exc.body, exc.headers)

    async def _not_http(self, kind: str, receive: Receive, send: Send) -> None:
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})


_AID_PATHS = frozenset({"/health", "/_stats", "/_reset", "/_latency"})


def _check_latency(ms: float) -> float:
    ms = float(ms)
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"latency_ms must be a finite number >= 0, not {ms}")
    return ms


class _EntityApp(ServiceApp):
    """Users and products: batch by ``ids``, a page by ``limit``/``offset``, one by id."""

    table: data.EntityTable
    _by_key: dict[bytes, bytes]

    def handle_list(self, params: dict[bytes, bytes]) -> bytes:
        # limit/offset are validated even beside ids: a bad parameter is a bad request either way.
        limit = _parse_uint(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        offset = _parse_uint(params, "offset", 0, None)
        raw_ids = params.get(b"ids")
        if raw_ids is not None:
            get = self._by_key.get
            return _items([blob for i in parse_ids(raw_ids, "ids") if (blob := get(i)) is not None])
        page = self.table.ordered[offset : offset + limit]
        return b'{"items":[' + b",".join(page) + b'],"total":' + self.table.total_bytes + b"}"

    def handle_get(self, raw_id: str) -> bytes:
        blob = self._by_key.get(self._item_key(raw_id))
        if blob is None:
            raise _not_found(f"no {self.name[:-1]} {raw_id}")
        return blob


class UsersApp(_EntityApp):
    """The users service."""

    name = "users"
    prefix = "/users"

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.table = data.users_table()
        self._by_key = _keyed(self.table.by_id)
        super().__init__(latency_ms=latency_ms)


class ProductsApp(_EntityApp):
    """The products service."""

    name = "products"
    prefix = "/products"

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.table = data.products_table()
        self._by_key = _keyed(self.table.by_id)
        super().__init__(latency_ms=latency_ms)


class ReviewsApp(ServiceApp):
    """The reviews service: ``GET /reviews?product_ids=`` only."""

    name = "reviews"
    prefix = "/reviews"
    has_item_route = False

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self._by_product = _keyed(data.reviews_table().by_product)
        super().__init__(latency_ms=latency_ms)

    def handle_list(self, params: dict[bytes, bytes]) -> bytes:
        raw = params.get(b"product_ids")
        if raw is None:
            raise _bad_request("product_ids is required")
        get = self._by_product.get
        return _items([blob for p in parse_ids(raw, "product_ids") if (blob := get(p)) is not None])


class OrdersApp(ServiceApp):
    """The orders service, including ``POST /orders``.

    Created orders live in this app instance only, so two apps never see each other's orders.
    """

    name = "orders"
    prefix = "/orders"
    collection_methods = "GET, POST"

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        seeded = data.orders_table()
        # Copies, because created orders are added to them and the seeded tables are shared.
        self._by_id = _keyed(seeded.by_id)
        self._by_user = _keyed(seeded.by_user)
        self._next_id = data.FIRST_CREATED_ORDER_ID
        super().__init__(latency_ms=latency_ms)

    def handle_list(self, params: dict[bytes, bytes]) -> bytes:
        raw_user_ids = params.get(b"user_ids")
        raw_ids = params.get(b"ids")
        if raw_user_ids is not None and raw_ids is not None:
            raise _bad_request("give either user_ids or ids, not both")
        if raw_user_ids is not None:
            get = self._by_user.get
            ids = parse_ids(raw_user_ids, "user_ids")
        elif raw_ids is not None:
            get = self._by_id.get
            ids = parse_ids(raw_ids, "ids")
        else:
            raise _bad_request("one of user_ids or ids is required")
        return _items([blob for i in ids if (blob := get(i))])

    def handle_get(self, raw_id: str) -> bytes:
        blob = self._by_id.get(self._item_key(raw_id))
        if blob is None:
            raise _not_found(f"no order {raw_id}")
        return blob

    async def handle_create(self, receive: Receive) -> tuple[int, bytes, Headers | None]:
        user_id, lines = _parse_create_order(await _read_body(receive, MAX_BODY_BYTES))
        if not 1 <= user_id <= data.USER_COUNT:
            raise HTTPError(422, "unknown_user", f"no user {user_id}")
        for product_id, _ in lines:
            if not 1 <= product_id <= data.PRODUCT_COUNT:
                raise HTTPError(422, "unknown_product", f"no product {product_id}")

        order_lines = [
            {
                "product_id": product_id,
                "quantity": quantity,
                "unit_price_cents": data.product_price_cents(product_id),
            }
            for product_id, quantity in lines
        ]
        total = sum(line["quantity"] * line["unit_price_cents"] for line in order_lines)
        if total >= 1 << 63:
            raise _bad_request("the order total does not fit a 64-bit integer")
        order_id = self._next_id
        self._next_id += 1
        blob = orjson.dumps(
            {
                "id": order_id,
                "user_id": user_id,
                "status": "pending",
                "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "currency": data.CURRENCY,
                "total_cents": total,
                "lines": order_lines,
            }
        )
        self._by_id[id_key(order_id)] = blob
        user_key = id_key(user_id)
        previous = self._by_user.get(user_key)
        self._by_user[user_key] = previous + b"," + blob if previous else blob
        return 201, blob, [(b"location", f"/orders/{order_id}".encode())]


def _is_id(value: object) -> TypeGuard[int]:
    # type() rather than isinstance(): JSON true must not pass for the integer 1.
    return type(value) is int and value >= 1


def _parse_create_order(body: bytes) -> tuple[int, list[tuple[int, int]]]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad_request("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise _bad_request("the body must be a JSON object")
    user_id = payload.get("user_id")
    if not _is_id(user_id):
        raise _bad_request("user_id must be an integer >= 1")
    raw_lines = payload.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise _bad_request("lines must be a non-empty array")
    lines: list[tuple[int, int]] = []
    for n, line in enumerate(raw_lines):
        if not isinstance(line, dict):
            raise _bad_request(f"lines[{n}] must be an object")
        product_id = line.get("product_id")
        quantity = line.get("quantity")
        if not _is_id(product_id):
            raise _bad_request(f"lines[{n}].product_id must be an integer >= 1")
        if not _is_id(quantity):
            raise _bad_request(f"lines[{n}].quantity must be an integer >= 1")
        lines.append((product_id, quantity))
    return user_id, lines


_APPS: dict[str, type[ServiceApp]] = {
    "users": UsersApp,
    "orders": OrdersApp,
    "products": ProductsApp,
    "reviews": ReviewsApp,
}


def create_app(name: str, *, latency_ms: float = 0.0) -> ServiceApp:
    """A fresh ASGI app of service ``name`` (one of :data:`SERVICE_NAMES`).

    ``latency_ms`` delays every counted request by that many milliseconds; it can be changed later
    through the ``latency_ms`` attribute or ``POST /_latency?ms=N``. Raises ``ValueError`` for an
    unknown name or a negative latency.
    """
    try:
        cls = _APPS[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; expected one of {SERVICE_NAMES}") from None
    return cls(latency_ms=latency_ms)
