"""The passthrough proxy end to end, against real fault servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bff.gateway import Gateway
from tests.support.fault_server import ResetServer
from tests.support.passthrough import asgi_request, gateway_config, running_gateway
from tests.support.servers import ThreadedServer, free_port

Servers = dict[str, ThreadedServer]

NO_RETRIES = {"attempts": 0}


def upstream(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"targets": list(urls), "retries": NO_RETRIES, **extra}


def routes(fault: Servers) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    a, b = fault["a"].url, fault["b"].url
    ups = {
        "echo": upstream(a + "/echo"),
        "b_echo": upstream(b + "/echo"),
        "faults": upstream(a),
    }
    rts: list[dict[str, Any]] = [
        {"id": "files", "path": "/files", "upstream": "echo", "strip_prefix": "/files"},
        {
            "id": "raw",
            "path": "/raw",
            "upstream": "echo",
            "strip_prefix": "/raw",
            "allow_encoded_slashes": True,
        },
        {
            "id": "canary",
            "path": "/files",
            "headers": {"x-canary": "true"},
            "upstream": "b_echo",
            "strip_prefix": "/files",
        },
        {"id": "faults", "path": "/f", "upstream": "faults", "strip_prefix": "/f"},
        {
            "id": "small",
            "path": "/small",
            "upstream": "echo",
            "strip_prefix": "/small",
            "methods": ["POST", "PUT"],
            "max_body_bytes": 1000,
        },
        {
            "id": "quick",
            "path": "/quick",
            "upstream": "faults",
            "strip_prefix": "/quick",
            "timeout": 0.3,
        },
        {
            "id": "short-tries",
            "path": "/short",
            "upstream": "faults",
            "strip_prefix": "/short",
            "read_timeout": 0.2,
        },
        {
            "id": "transformed",
            "path": "/t",
            "upstream": "faults",
            "strip_prefix": "/t",
            "transforms": {
                "request": {
                    "add": {"x-added": "by-gateway", "x-replaced": "new"},
                    "remove": ["x-drop-me"],
                    "rename": {"x-old": "x-new"},
                },
                "response": {
                    "add": {"x-frame-options": "DENY"},
                    "remove": ["x-internal"],
                    "rename": {"x-old-name": "x-new-name"},
                },
            },
        },
    ]
    return ups, rts


@pytest.fixture
async def gw(fault: Servers) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    ups, rts = routes(fault)
    async with running_gateway(gateway_config(ups, rts)) as pair:
        yield pair


def echoed_headers(response: httpx.Response) -> dict[str, str]:
    pairs = response.json()["headers"]
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names)), names
    return dict(pairs)


# -- forwarding --------------------------------------------------------------------------------


async def test_request_reaches_the_upstream_path_with_prefix_stripped(gw: Any) -> None:
    _, client = gw
    response = await client.get("/files/docs/readme.txt")
    assert response.status_code == 200
    echo = response.json()
    assert (echo["method"], echo["path"], echo["served_by"]) == (
        "GET",
        "/echo/docs/readme.txt",
        "a",
    )


@pytest.mark.parametrize(
    "query",
    [
        b"a=1&b=2",
        b"q=%zz&x=%2F%2f&sp=a+b&euro=%E2%82%AC",
        b'quoted="x"&angle=<b>&pipe=a|b&brace={}',
        b"k=v;w=1&&=&flag",
        b"a=%C3%A9&a=2&a=%c3%a9",
    ],
)
async def test_query_strings_are_forwarded_byte_for_byte(gw: Any, query: bytes) -> None:
    gateway, _ = gw
    response = await asgi_request(gateway, "GET", b"/files/x", query=query)
    assert response.status == 200
    assert response.json()["query"] == query.decode()


async def test_forwarding_headers(gw: Any) -> None:
    _, client = gw
    response = await client.get(
        "/files/x",
        headers={
            "x-forwarded-for": "198.51.100.1",
            "x-request-id": "trace.abc-123",
            "connection": "keep-alive, x-hop",
            "x-hop": "secret",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "upgrade": "websocket",
            "proxy-authorization": "Basic eA==",
            "x-custom": "kept",
            "cookie": "a=1",
        },
    )
    assert response.status_code == 200
    sent = echoed_headers(response)
    assert sent["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "gateway"
    assert sent["x-request-id"] == "trace.abc-123"
    assert response.headers["x-request-id"] == "trace.abc-123"
    assert sent["x-custom"] == "kept" and sent["cookie"] == "a=1"
    for hop in ("x-hop", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert hop not in sent
    assert sent["host"].startswith("127.0.0.1:")  # the upstream's own host


async def test_an_invalid_request_id_is_replaced_and_forwarded(gw: Any) -> None:
    _, client = gw
    response = await client.get("/files/x", headers={"x-request-id": "bad id with spaces"})
    sent = echoed_headers(response)
    assert sent["x-request-id"] == response.headers["x-request-id"] != "bad id with spaces"
    assert len(sent["x-request-id"]) == 32


async def test_response_headers_are_cleaned(gw: Any) -> None:
    _, client = gw
    response = await client.get("/f/headers")
    assert response.status_code == 200
    for gone in ("server", "x-powered-by", "x-hop-secret", "keep-alive"):
        assert gone not in response.headers
    assert response.headers["x-upstream"] == "kept"
    assert response.headers["x-internal"] == "private"
    assert response.text == "ok"


async def test_route_transforms(gw: Any) -> None:
    _, client = gw
    response = await client.get(
        "/t/echo",
        headers={"x-drop-me": "1", "x-old": "value", "x-replaced": "old", "x-other": "o"},
    )
    sent = echoed_headers(response)
    assert "x-drop-me" not in sent and "x-old" not in sent
    assert (sent["x-new"], sent["x-added"], sent["x-replaced"]) == ("value", "by-gateway", "new")
    assert sent["x-other"] == "o"
    response = await client.get("/t/headers")
    assert response.headers["x-frame-options"] == "DENY"
    assert "x-internal" not in response.headers
    assert response.headers["x-new-name"] == "renamed" and "x-old-name" not in response.headers


@pytest.mark.parametrize("bad", [b"a\r\nX-Injected: 1", b"a\nb", b"a\x00b"])
async def test_crlf_or_nul_in_a_header_is_refused_and_nothing_forwarded(
    gw: Any, fault: Servers, bad: bytes
) -> None:
    gateway, _ = gw
    response = await asgi_request(gateway, "GET", b"/files/x", headers=[(b"x-custom", bad)])
    assert response.status == 400
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    assert fault["a"].app.count() == 0


async def test_upstream_errors_pass_through_unchanged(gw: Any) -> None:
    _, client = gw
    for status in (400, 404, 418, 500, 503):
        response = await client.get(
            f"/f/status/{status}", params={"body": f"upstream says {status}"}
        )
        assert response.status_code == status
        assert response.text == f"upstream says {status}"
        assert response.headers["x-served-by"] == "a"


async def test_bodies_both_ways(gw: Any) -> None:
    _, client = gw
    response = await client.post("/files/upload", content=b"x" * 100_000)
    assert response.json()["body_size"] == 100_000
    assert echoed_headers(response)["content-length"] == "100000"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 10_000

    response = await client.put("/files/upload", content=chunks())
    assert response.json()["body_size"] == 100_000
    assert "content-length" not in echoed_headers(response)  # sent on chunked

    response = await client.post("/files/empty")
    assert response.json()["body_size"] == 0
    response = await client.get("/f/bytes", params={"n": 300_000, "chunked": 1})
    assert len(response.content) == 300_000 and "content-length" not in response.headers
    response = await client.get("/f/bytes", params={"n": 300_000})
    assert response.headers["content-length"] == "300000" and len(response.content) == 300_000


async def test_head_204_and_304_have_no_body(gw: Any) -> None:
    _, client = gw
    response = await client.head("/f/bytes", params={"n": 5000})
    assert response.status_code == 200
    assert response.headers["content-length"] == "5000" and response.content == b""
    for status in (204, 304):
        response = await client.get(f"/f/status/{status}")
        assert response.status_code == status and response.content == b""


# -- the gateway's own answers -----------------------------------------------------------------


async def test_no_route_is_404_and_wrong_method_405(gw: Any) -> None:
    _, client = gw
    response = await client.get("/nowhere")
    assert response.status_code == 404
    body = response.json()["error"]
    assert body["code"] == "NOT_FOUND" and body["request_id"] == response.headers["x-request-id"]
    response = await client.get("/small/x")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, PUT"
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_declared_body_over_the_limit_is_413_before_the_upstream(
    gw: Any, fault: Servers
) -> None:
    _, client = gw
    response = await client.post("/small/x", content=b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert fault["a"].app.count() == 0
    response = await client.post("/small/x", content=b"x" * 1000)
    assert response.status_code == 200


async def test_streamed_body_over_the_limit_is_cut_off_with_413(gw: Any) -> None:
    gateway, client = gw

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"z" * 100

    response = await client.put("/small/x", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # The client's oversized body is not the upstream's failure.
    echo = gateway.upstreams["echo"]
    assert echo.breaker is not None and echo.breaker.state == "closed"
    assert echo.breaker.failures == 0 and echo.targets[0].failures == 0


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "upstream_path"),
    [
        (b"/files/a/%2e%2e/b", 200, "/echo/b"),
        (b"/files/a/../../files/c", 200, "/echo/c"),
        (b"/files//a///b", 200, "/echo/a/b"),
        (b"/files/%7Euser", 200, "/echo/~user"),
        (b"/files/a/../../../etc/passwd", 404, None),
        (b"/files/%2e%2e/%2e%2e/secret", 404, None),
        (b"/files/..%2fsecret", 400, None),
        (b"/files/a%2Fb", 400, None),
        (b"/files/a%5Cb", 400, None),
        (b"/files/a\\b", 400, None),
        (b"/files/a%00b", 400, None),
        (b"/raw/a%00b", 400, None),
        (b"/raw/..%2f..%2fetc", 400, None),
    ],
)
async def test_paths_never_escape_their_route(
    gw: Any, fault: Servers, raw: bytes, status: int, upstream_path: str | None
) -> None:
    gateway, _ = gw
    response = await asgi_request(gateway, "GET", raw)
    assert response.status == status, response.body
    if upstream_path is None:
        assert response.json()["error"]["request_id"]
        assert fault["a"].app.count() == 0
    else:
        assert response.json()["path"] == upstream_path


async def test_allowed_encoded_slashes_are_forwarded_still_encoded(gw: Any) -> None:
    gateway, _ = gw
    response = await asgi_request(gateway, "GET", b"/raw/a%2fb%5Cc")
    assert response.status == 200
    assert response.json()["raw_path"] == "/echo/a%2Fb%5Cc"


# -- routing to upstreams ----------------------------------------------------------------------


async def test_canary_header_routes_to_the_canary(gw: Any) -> None:
    _, client = gw
    assert (await client.get("/files/x")).json()["served_by"] == "a"
    assert (await client.get("/files/x", headers={"x-canary": "true"})).json()["served_by"] == "b"
    assert (await client.get("/files/x", headers={"x-canary": "no"})).json()["served_by"] == "a"


async def test_weighted_split_end_to_end(fault: Servers) -> None:
    ups = {"a": upstream(fault["a"].url + "/echo"), "b": upstream(fault["b"].url + "/echo")}
    split = [{"upstream": "a", "weight": 1}, {"upstream": "b", "weight": 1}]
    rts = [{"id": "s", "path": "/s", "split": split, "strip_prefix": "/s"}]
    async with running_gateway(gateway_config(ups, rts)) as (_, client):
        served = [(await client.get("/s/x")).json()["served_by"] for _ in range(60)]
    assert 10 <= served.count("a") <= 50 and served.count("a") + served.count("b") == 60


async def test_gateway_paths_keep_precedence_over_a_catch_all_route(fault: Servers) -> None:
    ups = {"a": upstream(fault["a"].url + "/echo")}
    rts = [{"id": "all", "path": "/", "upstream": "a"}]
    async with running_gateway(gateway_config(ups, rts)) as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json()["status"] == "ok"
        assert (await client.get("/anything")).json()["path"] == "/echo/anything"
    assert fault["a"].app.count() == 1


# -- failures ----------------------------------------------------------------------------------


async def test_timeouts_answer_504(gw: Any) -> None:
    _, client = gw
    started = time.monotonic()
    response = await client.get("/quick/slow", params={"ms": 3000})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "UPSTREAM_TIMEOUT"
    assert elapsed < 2.0


async def test_a_route_may_shorten_the_per_try_read_timeout(gw: Any) -> None:
    _, client = gw
    started = time.monotonic()
    response = await client.get("/short/slow", params={"ms": 3000})
    assert response.status_code == 504 and time.monotonic() - started < 2.0
    # The upstream's own read timeout (10 s) still applies on its other routes.
    response = await client.get("/f/slow", params={"ms": 300})
    assert response.status_code == 200


async def test_x_request_timeout_shortens_never_lengthens(gw: Any) -> None:
    _, client = gw
    started = time.monotonic()
    response = await client.get(
        "/f/slow", params={"ms": 3000}, headers={"x-request-timeout": "0.2"}
    )
    assert response.status_code == 504 and time.monotonic() - started < 2.0
    started = time.monotonic()
    response = await client.get(
        "/quick/slow", params={"ms": 3000}, headers={"x-request-timeout": "60"}
    )
    assert response.status_code == 504 and time.monotonic() - started < 2.0
    response = await client.get("/f/slow", params={"ms": 10}, headers={"x-request-timeout": "5"})
    assert response.status_code == 200
    for bad in ("soon", "-1", "0", "inf", "nan"):
        response = await client.get("/f/slow", headers={"x-request-timeout": bad})
        assert response.status_code == 400
        assert "X-Request-Timeout" in response.json()["error"]["message"]


async def test_connection_refused_and_reset_answer_502() -> None:
    with ResetServer() as reset:
        ups = {"down": upstream(f"http://127.0.0.1:{free_port()}"), "reset": upstream(reset.url)}
        rts = [
            {"id": "down", "path": "/down", "upstream": "down"},
            {"id": "reset", "path": "/reset", "upstream": "reset"},
        ]
        async with running_gateway(gateway_config(ups, rts)) as (_, client):
            for path in ("/down/x", "/reset/x"):
                response = await client.get(path)
                assert response.status_code == 502, path
                body = response.json()["error"]
                assert body["code"] == "UPSTREAM_ERROR"
                assert "127.0.0.1" not in response.text  # nothing internal leaks
        assert reset.connections >= 1


# -- over a real socket ------------------------------------------------------------------------


@pytest.fixture
async def served_gateway(fault: Servers) -> AsyncIterator[ThreadedServer]:
    """The gateway behind a real uvicorn (streaming, aborted responses)."""
    ups, rts = routes(fault)
    from bff.gateway import build_gateway

    server = ThreadedServer(build_gateway(gateway_config(ups, rts)))
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def test_responses_are_streamed_not_buffered(served_gateway: ThreadedServer) -> None:
    async with httpx.AsyncClient(base_url=served_gateway.url) as client:
        started = time.monotonic()
        async with client.stream("GET", "/f/drip", params={"chunks": 4, "ms": 300}) as response:
            assert response.status_code == 200
            arrivals = [time.monotonic() - started async for _ in response.aiter_raw()]
    assert arrivals[0] < 0.9  # the first chunk long before the last one is produced
    assert arrivals[-1] >= 1.1


async def test_a_reset_mid_body_reaches_the_client_as_a_broken_response(
    served_gateway: ThreadedServer,
) -> None:
    async with httpx.AsyncClient(base_url=served_gateway.url) as client:
        with pytest.raises(httpx.HTTPError):
            response = await client.get("/f/reset")
            assert len(response.content) < 1 << 20  # pragma: no cover - must not get here
        # The connection closes, the gateway keeps serving.
        assert (await client.get("/files/x")).status_code == 200


async def test_raw_escapes_over_the_wire(served_gateway: ThreadedServer) -> None:
    def raw(path: bytes) -> bytes:
        import socket

        with socket.create_connection(("127.0.0.1", served_gateway.port)) as sock:
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data

    assert raw(b"/files/a/../../../admin").startswith(b"HTTP/1.1 404")
    assert raw(b"/files/..%2fadmin").startswith(b"HTTP/1.1 400")
    assert raw(b"/files/x/%2e%2e/y?q=%zz").startswith(b"HTTP/1.1 200")
    assert b'"path":"/echo/y"' in raw(b"/files/x/%2e%2e/y?q=%zz")


async def test_a_client_that_goes_away_stops_the_upstream_read(
    served_gateway: ThreadedServer, fault: Servers
) -> None:
    app = fault["a"].app
    params = {"chunks": 200, "ms": 20, "size": 1000}
    async with (
        httpx.AsyncClient(base_url=served_gateway.url) as client,
        client.stream("GET", "/f/drip", params=params) as response,
    ):
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received >= 20_000:
                break  # leaving the block closes the connection
    for _ in range(60):  # the whole drip would take 4 s; the abort is seen long before
        if app.aborted:
            break
        await asyncio.sleep(0.05)
    assert app.aborted == 1
