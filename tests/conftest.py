"""Fixtures shared by the whole suite: real sample services and gateways built on them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from bff.gateway import Gateway, build_gateway
from services import SERVICE_NAMES, ServiceServer
from tests.support.gateway import demo_config
from tests.support.redis_server import RedisServer, ping, redis_server_binary


class SampleServices:
    """The four sample services, running, with helpers to read and zero their counters."""

    def __init__(self, servers: dict[str, ServiceServer]) -> None:
        self.servers = servers

    def __getitem__(self, name: str) -> ServiceServer:
        return self.servers[name]

    @property
    def env(self) -> dict[str, str]:
        env = {f"{n.upper()}_URL": s.url for n, s in self.servers.items()}
        env["USERS_NEXT_URL"] = self.servers["users"].url
        return env

    def reset(self) -> None:
        for s in self.servers.values():
            httpx.post(s.url + "/_reset").raise_for_status()

    def stats(self) -> dict[str, dict[str, object]]:
        return {n: httpx.get(s.url + "/_stats").json() for n, s in self.servers.items()}

    def requests(self) -> dict[str, int]:
        """Requests each service served since the last reset."""
        return {n: int(v["requests"]) for n, v in self.stats().items()}  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def services() -> Iterator[SampleServices]:
    started: dict[str, ServiceServer] = {}
    try:
        for name in SERVICE_NAMES:
            started[name] = ServiceServer(name).start()
        yield SampleServices(started)
    finally:
        with ThreadPoolExecutor() as pool:
            list(pool.map(ServiceServer.stop, started.values()))


@pytest.fixture(scope="session")
async def gateway(services: SampleServices) -> AsyncIterator[Gateway]:
    """A gateway on the demo config, shared by tests that change no gateway state."""
    # Every test shares this gateway and one client address: no plans, so no quota runs out
    # under them (rate limits are tested on gateways of their own, tests/bff/ratelimit).
    # Whole answers are not cached either: tests count the upstream requests of repeated
    # queries (the response cache is tested on gateways of its own, tests/bff/graphql).
    overrides = {"rate_limits": {"plans": None}, "graphql": {"response_cache": False}}
    gw = build_gateway(demo_config(services.env, overrides))
    await gw.startup()
    yield gw
    await gw.shutdown()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the shared gateway in-process."""
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis for the tests: ``$REDIS_URL``; else the one on 127.0.0.1:6379 (database 15);
    else a ``redis-server`` started for the session. Without any, the test is skipped, or fails
    when ``BFF_REQUIRE_REDIS=1`` (as in CI). Tests share it: give keys a prefix of their own."""
    url = os.environ.get("REDIS_URL")
    if url:
        parts = urlsplit(url)
        if parts.scheme == "unix" or ping(parts.hostname or "127.0.0.1", parts.port or 6379):
            yield url
            return
        reason = f"REDIS_URL={url} does not answer"
    elif ping("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/15"
        return
    elif redis_server_binary():
        with RedisServer() as server:
            yield server.url
        return
    else:
        reason = "no Redis: set REDIS_URL, run one on 127.0.0.1:6379, or install redis-server"
    if os.environ.get("BFF_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason} (BFF_REQUIRE_REDIS=1)")
    pytest.skip(reason)
