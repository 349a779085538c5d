"""Traces: the span tree of a request, W3C trace context in and out, sampling, OTLP export."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import httpx
import pytest

from tests.support.servers import ThreadedServer

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
QUERY = "query UsersAndOrders { users(limit: 2) { items { id orders { id } } } }"
NO_PLANS = {"rate_limits": {"plans": None}}


class RecordingProxy:
    """An upstream in front of a real sample service: forwards each request there and keeps
    the trace context it arrived with."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[str, str | None, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if scope["path"] != "/health":  # the gateway's active health checks
            self.seen.append((scope["path"], headers.get("traceparent"), headers.get("tracestate")))
        url = self.target + scope["raw_path"].decode()
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode()
        async with httpx.AsyncClient() as client:
            answer = await client.get(url)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})


@pytest.fixture(scope="module")
def users_recorder(services: Any) -> Any:
    proxy = RecordingProxy(services["users"].url)
    with ThreadedServer(proxy, lifespan="off") as server:
        proxy.url = server.url  # type: ignore[attr-defined]
        yield proxy


def spans_by_name(obs: Any) -> dict[str, Any]:
    return {s.name: s for s in obs.spans.get_finished_spans()}


def hex_span(span: Any) -> str:
    return f"{span.context.span_id:016x}"


async def test_graphql_span_tree_and_traceparent_at_the_upstream(
    observed_gateway: Any, users_recorder: Any
) -> None:
    users_recorder.seen.clear()
    async with observed_gateway(NO_PLANS, env={"USERS_URL": users_recorder.url}) as obs:
        r = await obs.client.post(
            "/graphql/web",
            json={"query": QUERY},
            headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
        )
        assert r.status_code == 200 and "errors" not in r.json()
        spans = spans_by_name(obs)
        (entry,) = await obs.log_entries()

    server = spans["POST app:web"]
    assert f"{server.context.trace_id:032x}" == CALLER_TRACE
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN and server.parent.is_remote
    assert server.kind.name == "SERVER"
    assert server.attributes["http.response.status_code"] == 200
    assert entry["trace_id"] == CALLER_TRACE
    execute = spans["graphql.execute"]
    for child in ("graphql.parse", "graphql.validate", "graphql.execute"):
        assert spans[child].parent.span_id == server.context.span_id
    users_call = spans["GET users"]
    assert users_call.kind.name == "CLIENT"
    assert users_call.parent.span_id == execute.context.span_id
    assert users_call.attributes["http.response.status_code"] == 200
    loader = spans["loader orders_by_user"]
    assert loader.parent.span_id == execute.context.span_id
    assert loader.attributes["bff.batch"] == 2
    assert spans["GET orders"].parent.span_id == loader.context.span_id
    assert all(s.context.trace_id == server.context.trace_id for s in spans.values())

    # The real upstream saw the client span as the parent, in the caller's trace.
    ((path, traceparent, tracestate),) = users_recorder.seen
    assert path == "/users"
    assert traceparent == f"00-{CALLER_TRACE}-{hex_span(users_call)}-01"
    assert tracestate == "vendor=1"


async def test_passthrough_replaces_the_callers_traceparent(
    observed_gateway: Any, users_recorder: Any
) -> None:
    users_recorder.seen.clear()
    async with observed_gateway(NO_PLANS, env={"USERS_URL": users_recorder.url}) as obs:
        r = await obs.client.get("/api/users/1", headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200
        spans = spans_by_name(obs)
    server, client = spans["GET route:users"], spans["GET users"]
    assert client.parent.span_id == server.context.span_id
    assert client.attributes["url.template"]
    ((_, traceparent, _),) = users_recorder.seen
    assert traceparent == f"00-{CALLER_TRACE}-{hex_span(client)}-01"


async def test_without_tracing_the_callers_context_travels_on(
    observed_gateway: Any, users_recorder: Any
) -> None:
    users_recorder.seen.clear()
    env = {"USERS_URL": users_recorder.url}
    async with observed_gateway(NO_PLANS, env=env, tracing=False) as obs:
        assert obs.gateway.telemetry.tracing is None
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
        await obs.client.post("/graphql/web", json={"query": QUERY}, headers=headers)
        # Distinct users: the route's response cache would answer repeats itself.
        await obs.client.get("/api/users/1", headers=headers)
        await obs.client.get("/api/users/2", headers={"traceparent": "00-garbage"})
        entries = await obs.log_entries()
    assert [t for _, t, _ in users_recorder.seen] == [TRACEPARENT, TRACEPARENT, "00-garbage"]
    assert users_recorder.seen[0][2] == "vendor=1"
    assert [e["trace_id"] for e in entries] == [CALLER_TRACE, CALLER_TRACE, None]


async def test_without_tracing_or_log_the_context_is_read_when_needed(
    observed_gateway: Any, users_recorder: Any
) -> None:
    users_recorder.seen.clear()
    overrides = {**NO_PLANS, "observability": {"access_log": "off"}}
    env = {"USERS_URL": users_recorder.url}
    async with observed_gateway(overrides, env=env, tracing=False) as obs:
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
        await obs.client.post("/graphql/web", json={"query": QUERY}, headers=headers)
        other = QUERY.replace("limit: 2", "limit: 3")  # never served from a cache
        await obs.client.post("/graphql/web", json={"query": other})
    assert users_recorder.seen == [("/users", TRACEPARENT, "vendor=1"), ("/users", None, None)]


async def test_no_opentelemetry_code_runs_when_tracing_is_off(observed_gateway: Any) -> None:
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if module.startswith("opentelemetry"):
                calls.append(f"{module}.{frame.f_code.co_name}")

    async with observed_gateway(NO_PLANS, tracing=False) as obs:
        await obs.client.post("/graphql/web", json={"query": QUERY})  # warm the caches
        sys.setprofile(profile)
        try:
            headers = {"traceparent": TRACEPARENT}
            await obs.client.post("/graphql/web", json={"query": QUERY}, headers=headers)
            await obs.client.get("/api/users/1", headers=headers)
        finally:
            sys.setprofile(None)
    assert calls == []


async def test_sampling_is_parent_based(observed_gateway: Any, users_recorder: Any) -> None:
    users_recorder.seen.clear()
    unsampled_parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    overrides = {**NO_PLANS, "observability": {"tracing": {"sample_ratio": 0}}}
    async with observed_gateway(overrides, env={"USERS_URL": users_recorder.url}) as obs:
        await obs.client.get("/api/users/1")  # a new trace, not sampled
        await obs.client.post("/graphql/web", json={"query": QUERY})
        assert obs.spans.get_finished_spans() == ()
        await obs.client.get("/api/users/2", headers={"traceparent": TRACEPARENT})
        assert len(obs.spans.get_finished_spans()) == 2  # the caller sampled it: kept
        await obs.client.get("/api/users/3", headers={"traceparent": unsampled_parent})
        assert len(obs.spans.get_finished_spans()) == 2  # the caller did not: not recorded
        entries = await obs.log_entries()
    new_trace, graphql, sampled, not_sampled = (t for _, t, _ in users_recorder.seen)
    for traceparent, entry in zip((new_trace, graphql), entries, strict=False):
        # Not recorded, but the trace goes on downstream, marked not sampled.
        assert traceparent is not None and traceparent.endswith("-00")
        assert traceparent.split("-")[1] == entry["trace_id"]
    assert sampled is not None and sampled.startswith(f"00-{CALLER_TRACE}-")
    assert not_sampled is not None and not_sampled.startswith(f"00-{CALLER_TRACE}-")
    assert not_sampled.endswith("-00") and CALLER_SPAN not in not_sampled


async def test_sample_ratio_applies_to_new_traces(observed_gateway: Any) -> None:
    overrides = {**NO_PLANS, "observability": {"tracing": {"sample_ratio": 0.5}}}
    async with observed_gateway(overrides) as obs:
        for _ in range(400):
            await obs.client.get("/healthz")
        recorded = len(obs.spans.get_finished_spans())
    assert 130 < recorded < 270  # binomial(400, 0.5): outside this about once in 10^11


class Collector:
    """An OTLP/HTTP collector that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        self.arrived = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        self.received.append((scope["path"], headers[b"content-type"].decode(), body))
        self.arrived.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_spans_are_exported_over_otlp(services: Any) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from bff.gateway import build_gateway
    from tests.support.gateway import demo_config

    collector = Collector()
    with ThreadedServer(collector, lifespan="off") as server:
        tracing = {"otlp_endpoint": server.url, "sample_ratio": 1.0, "service_name": "bff-test"}
        overrides = {**NO_PLANS, "observability": {"tracing": tracing, "access_log": "off"}}
        gateway = build_gateway(demo_config(services.env, overrides))
        await gateway.startup()
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            assert (await client.get("/api/users/1")).status_code == 200
        await gateway.shutdown()  # flushes the batch processor
        await asyncio.to_thread(collector.arrived.wait, 10)
    path, content_type, body = collector.received[0]
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"GET route:users" in body and b"bff-test" in body


def test_an_endpoint_without_the_exporter_is_a_clear_error(monkeypatch: Any) -> None:
    from bff.config import TracingConfig
    from bff.errors import ConfigError
    from bff.observability import Tracing

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"pip install 'bff-gateway\[otlp\]'"):
        Tracing.from_config(TracingConfig(otlp_endpoint="http://collector:4318"))
