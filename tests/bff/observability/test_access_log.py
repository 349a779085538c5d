"""Access log formatting, redaction and the buffered writer."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson

from bff.observability.access_log import (
    AccessLogWriter,
    format_json,
    format_text,
    redact_path,
    redact_query,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
KEY = "bff_" + "A" * 43


def test_secret_parameters_are_redacted() -> None:
    query = (
        f"token=t0p&api_key=k3y&X-Api-Key=k&access_token={JWT}&password=pw&page=2&q=shoes"
        f"&next={JWT}&variables=%7B%22pw%22%3A1%7D&{KEY}"
    ).encode()
    out = redact_query(query)
    for secret in ("t0p", "k3y", JWT, "pw&", KEY, "%7B"):
        assert secret not in out
    assert "page=2" in out and "q=shoes" in out
    assert out.count("[redacted]") == 8


def test_long_queries_are_cut_and_paths_lose_tokens() -> None:
    assert redact_query(b"a=" + b"x" * 5000).endswith("...")
    assert redact_path(f"/reset/{JWT}/done") == "/reset/[redacted]/done"
    assert redact_path("/api/users/1") == "/api/users/1"


def entry(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "time": 1_700_000_000.25,
        "request_id": "r1",
        "trace_id": None,
        "method": "GET",
        "path": "/api/users/1",
        "route": "users",
        "app": None,
        "operation": None,
        "status": 200,
        "duration_ms": 1.5,
        "upstream_ms": 1.0,
        "upstream_calls": 1,
        "principal": "user:7",
        "client_ip": "127.0.0.1",
        "bytes_in": 0,
        "bytes_out": 10,
        "cache": "hit",
    }
    base.update(extra)
    return base


def test_json_and_text_lines() -> None:
    line = orjson.loads(format_json(entry()))
    assert line["time"] == "2023-11-14T22:13:20.250Z"
    assert line["route"] == "users" and line["principal"] == "user:7"
    text = format_text(entry(path="/a\nfake 200 line")).decode()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "route=users" in text and "cache=hit" in text and "\\x0a" in text


async def test_writer_buffers_then_writes_in_order() -> None:
    out = io.BytesIO()
    writer = AccessLogWriter(out, flush_interval=0.01)
    for i in range(1000):
        writer.write(b"%d\n" % i)
    assert out.getvalue() == b""  # nothing written on the loop
    await asyncio.sleep(0.2)
    await writer.aclose()
    assert out.getvalue().split() == [str(i).encode() for i in range(1000)]


async def test_writer_drops_and_counts_past_its_bound() -> None:
    dropped: list[int] = []
    writer = AccessLogWriter(io.BytesIO(), max_pending=100, on_drop=dropped.append)
    for _ in range(20):
        writer.write(b"x" * 10 + b"\n")
    assert writer.dropped == 11 and sum(dropped) == 11
    await writer.aclose()


# -- through a gateway -----------------------------------------------------------------------

SECRET = "demo-secret-change-me-before-production"


async def test_one_json_line_per_request_without_secrets(observed_gateway: Any) -> None:
    from bff.cli import demo_token

    token = demo_token(SECRET)
    async with observed_gateway({"rate_limits": {"plans": None}}) as obs:
        c = obs.client
        r = await c.post(
            "/graphql/web",
            json={"query": "query Me { users(limit: 1) { items { id } } }"},
            headers={
                "authorization": f"Bearer {token}",
                "cookie": "session=c00kie-s3cret",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "x-request-id": "req-1",
            },
        )
        assert r.status_code == 200
        await c.get(
            "/api/users/1?token=qs-s3cret&api_key=k3y-s3cret&password=pw-s3cret&page=2",
            headers={"x-api-key": KEY, "cookie": "a=b"},
        )
        await c.get(f"/api/users/1?access_token={token}", headers={"authorization": "Basic Zm9v"})
        await c.post("/graphql/web", content=b'{"query": "{ __typename }", "pw": "body-s3cret"}')
        lines = await obs.log_lines()

    text = b"\n".join(lines).decode()
    for secret in (token, KEY, "c00kie-s3cret", "qs-s3cret", "k3y-s3cret", "pw-s3cret"):
        assert secret not in text
    assert "body-s3cret" not in text and "Zm9v" not in text
    entries = [orjson.loads(line) for line in lines]
    assert len(entries) == 4
    first = entries[0]
    assert first["request_id"] == "req-1"
    assert first["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert first["app"] == "web" and first["operation"] == "Me"
    assert first["principal"] == "user:1"
    assert first["client_ip"] == "10.1.2.3"
    assert first["status"] == 200 and first["upstream_calls"] == 1
    assert first["bytes_in"] > 0 and first["bytes_out"] > 0
    assert first["duration_ms"] >= first["upstream_ms"] > 0
    second = entries[1]
    assert second["route"] == "users" and second["status"] == 401  # refused: unknown key
    assert "page=2" in second["query"]
    for entry in entries:
        assert set(entry) >= {
            "time", "request_id", "trace_id", "method", "path", "route", "app", "operation",
            "status", "duration_ms", "upstream_ms", "principal", "bytes_in", "bytes_out",
            "cache",
        }  # fmt: skip


async def test_text_format_and_off(observed_gateway: Any) -> None:
    text = {"observability": {"access_log": "text"}, "rate_limits": {"plans": None}}
    async with observed_gateway(text) as obs:
        await obs.client.get("/api/users/1?token=s3cret")
        (line,) = await obs.log_lines()
    assert b" GET /api/users/1?token=[redacted] 200 " in line and b"route=users" in line
    off = {"observability": {"access_log": "off"}, "rate_limits": {"plans": None}}
    async with observed_gateway(off) as obs:
        assert obs.gateway.telemetry.access_log is None
        assert (await obs.client.get("/healthz")).status_code == 200
