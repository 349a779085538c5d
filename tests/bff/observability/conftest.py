"""Gateways with their telemetry captured: access log lines, finished spans, exposition."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from bff.gateway import Gateway, build_gateway
from bff.observability import Telemetry
from tests.support.gateway import demo_config


class Observed:
    """A started gateway, an HTTP client to it, and what its telemetry recorded."""

    def __init__(self, gateway: Gateway, client: httpx.AsyncClient, log: io.BytesIO) -> None:
        self.gateway = gateway
        self.client = client
        self._log = log
        self.spans = InMemorySpanExporter()

    async def log_lines(self) -> list[bytes]:
        """Every access log line so far (written out first)."""
        writer = self.gateway.telemetry.access_log
        assert writer is not None
        await writer.aclose()
        return self._log.getvalue().splitlines()

    async def log_entries(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in await self.log_lines()]

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The metrics endpoint's samples by ``(name, sorted labels)``."""
        r = await self.client.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        out = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def value(samples: dict[Any, float], metric: str, /, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


ObservedFactory = Callable[..., Any]


@pytest.fixture
def observed_gateway(
    services: Any,
) -> Callable[..., Any]:
    """``async with observed_gateway(overrides, env=..., access_log="json") as obs:`` a started
    gateway on the demo config (services from the ``services`` fixture unless ``env``
    replaces them), its access log in memory, its spans in ``obs.spans``."""

    @asynccontextmanager
    async def make(
        overrides: dict[str, Any] | None = None,
        *,
        env: dict[str, str] | None = None,
        tracing: bool = True,
    ) -> AsyncIterator[Observed]:
        base: dict[str, Any] = {"observability": {"access_log": "json"}}
        config = demo_config({**services.env, **(env or {})}, _merged(base, overrides or {}))
        log = io.BytesIO()
        exporter = InMemorySpanExporter()
        telemetry = Telemetry.from_config(
            config.observability,
            access_log_stream=log,
            span_exporter=exporter if tracing else None,
        )
        gateway = build_gateway(config, telemetry=telemetry)
        await gateway.startup()
        transport = httpx.ASGITransport(app=gateway, client=("10.1.2.3", 4321))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                obs = Observed(gateway, c, log)
                obs.spans = exporter
                yield obs
        finally:
            await gateway.shutdown()

    return make


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], v)
        else:
            out[key] = v
    return out


Scrape = Callable[[], Awaitable[dict[Any, float]]]
