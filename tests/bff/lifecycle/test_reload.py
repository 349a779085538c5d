"""Hot reload applied in process: what swaps, what is kept, what is refused."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bff.config import GatewayConfig, parse_config
from bff.gateway import Gateway, build_gateway
from bff.lifecycle import ProcessControl
from bff.runtime import plan_reload
from services import ServiceServer
from tests.conftest import SampleServices
from tests.support.fault_server import FaultApp
from tests.support.servers import ThreadedServer

USERS_QUERY = {"query": "{ user(id: 1) { id name } }"}


def config_data(services: SampleServices, slow: ThreadedServer) -> dict[str, Any]:
    return {
        "store": {"url": "sqlite:///:memory:"},
        "upstreams": {
            "users": {"targets": [services["users"].url], "breaker": {"failure_threshold": 2}},
            "orders": {"targets": [services["orders"].url]},
            "products": {"targets": [services["products"].url]},
            "reviews": {"targets": [services["reviews"].url]},
            "slow": {"targets": [slow.url]},
        },
        "graphql": {
            "schema_modules": [
                "schema.users",
                "schema.orders",
                "schema.products",
                "schema.reviews",
            ],
            "apps": {"web": {"path": "/graphql/web"}},
        },
        "routes": [
            {"id": "users", "path": "/api/users", "upstream": "users", "strip_prefix": "/api"},
            {"id": "slow", "path": "/slow", "upstream": "slow"},
        ],
        "observability": {"access_log": "off"},
    }


def configure(data: dict[str, Any]) -> GatewayConfig:
    return parse_config(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def slow() -> Iterator[ThreadedServer]:
    server = ThreadedServer(FaultApp("slow")).start()
    yield server
    server.stop()


@pytest.fixture
def data(services: SampleServices, slow: ThreadedServer) -> dict[str, Any]:
    return config_data(services, slow)


@pytest.fixture
async def gateway(data: dict[str, Any]) -> AsyncIterator[Gateway]:
    gw = build_gateway(configure(data))
    await gw.startup()
    yield gw
    await gw.shutdown()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def test_routes_and_upstreams_swap_and_unchanged_upstreams_are_kept(
    gateway: Gateway, client: httpx.AsyncClient, data: dict[str, Any], services: SampleServices
) -> None:
    users = gateway.upstreams["users"]
    orders = gateway.upstreams["orders"]
    assert (await client.get("/api/orders/10")).status_code == 404
    data["routes"].append(
        {"id": "orders", "path": "/api/orders", "upstream": "orders", "strip_prefix": "/api"}
    )
    data["upstreams"]["orders"]["timeout"] = {"read": 3}  # changed: rebuilt
    result = await gateway.reload(configure(data))
    assert result.applied, result
    assert result.changes == ["upstreams changed: orders", "routes added: orders"]
    assert result.restart_needed == []
    assert gateway.upstreams["users"] is users  # its connections and breaker carry on
    assert gateway.upstreams["orders"] is not orders
    assert gateway.upstreams["orders"].read_timeout == 3
    assert (await client.get("/api/orders/10")).status_code == 200
    # The replaced upstream is closed once nothing can be using it any more.
    assert gateway.reloader is not None and orders in gateway.reloader._retired


async def test_graphql_resolvers_follow_upstream_changes(
    gateway: Gateway, client: httpx.AsyncClient, data: dict[str, Any]
) -> None:
    with ServiceServer("users") as replacement:
        assert (await client.post("/graphql/web", json=USERS_QUERY)).status_code == 200
        assert replacement.app.stats()["requests"] == 0
        data["upstreams"]["users"]["targets"] = [replacement.url]
        assert (await gateway.reload(configure(data))).applied
        query = {"query": "{ user(id: 2) { id name } }"}  # nothing cached for this one
        r = await client.post("/graphql/web", json=query)
        assert r.status_code == 200 and r.json()["data"]["user"]["id"] == "2", r.text
        assert replacement.app.stats()["requests"] >= 1


async def test_in_flight_requests_finish_on_the_upstream_they_started_with(
    gateway: Gateway, client: httpx.AsyncClient, data: dict[str, Any]
) -> None:
    slow = gateway.upstreams["slow"]
    started = asyncio.create_task(client.get("/slow", params={"ms": "400"}))
    await asyncio.sleep(0.15)
    del data["upstreams"]["slow"]
    data["routes"] = [r for r in data["routes"] if r["id"] != "slow"]
    result = await gateway.reload(configure(data))
    assert result.applied and "upstreams removed: slow" in result.changes
    assert "slow" not in gateway.upstreams
    assert (await client.get("/slow", params={"ms": "0"})).status_code == 404
    answer = await started
    assert answer.status_code == 200 and answer.json()["path"] == "/slow"
    assert gateway.reloader is not None
    await gateway.reloader.aclose()  # what shutdown does: retired upstreams are closed
    assert slow not in gateway.reloader._retired


async def test_rate_limits_swap_and_keep_their_counters(data: dict[str, Any]) -> None:
    data["rate_limits"] = {"algorithm": "sliding_window"}  # counts requests: easy to follow
    gateway = build_gateway(configure(data))
    await gateway.startup()
    try:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            assert gateway.rate_limiter is None
            data["rate_limits"]["plans"] = {"anonymous": {"per_minute": 3}}
            assert (await gateway.reload(configure(data))).applied
            assert gateway.rate_limiter is not None
            codes = [(await client.get("/api/users/1")).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            store = gateway.rate_limiter.store
            data["rate_limits"]["plans"] = {"anonymous": {"per_minute": 5}}
            assert (await gateway.reload(configure(data))).applied
            assert gateway.rate_limiter.store is store  # same counters: 3 of 5 used
            codes = [(await client.get("/api/users/1")).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
    finally:
        await gateway.shutdown()


async def test_what_needs_a_restart_is_reported_and_left_alone(
    gateway: Gateway, client: httpx.AsyncClient, data: dict[str, Any]
) -> None:
    data["listen"] = {"port": 9999}
    data["graphql"]["apps"]["mobile"] = {"path": "/graphql/mobile"}
    data["rate_limits"] = {"algorithm": "sliding_window"}
    data["routes"].append({"id": "u2", "path": "/api/u2", "upstream": "users"})
    result = await gateway.reload(configure(data))
    assert result.applied
    assert result.restart_needed == ["listen", "graphql", "rate_limits.algorithm"]
    assert result.changes == ["routes added: u2"]
    assert gateway.config.listen.port == 8080
    assert list(gateway.config.graphql.apps) == ["web"]
    assert gateway.config.rate_limits.algorithm == "token_bucket"
    assert (await client.post("/graphql/mobile", json=USERS_QUERY)).status_code == 404


async def test_routes_that_clash_with_what_is_kept_are_refused(
    gateway: Gateway, client: httpx.AsyncClient, data: dict[str, Any]
) -> None:
    # The new file moves the app away and puts a route where it was: valid as a file, but the
    # app stays where it is until a restart, so the route would be hidden behind it.
    data["graphql"]["apps"]["web"] = {"path": "/graphql/web2"}
    data["routes"].append({"id": "web", "path": "/graphql/web", "upstream": "users"})
    result = await gateway.reload(configure(data))
    assert not result.applied
    assert result.problems == [
        ("routes[2].path", "'/graphql/web' is inside graphql.apps.web (/graphql/web)")
    ]
    assert [r.id for r in gateway.config.routes] == ["users", "slow"]


def test_plan_reload_lists_changes() -> None:
    base = {"upstreams": {"a": {"targets": ["http://127.0.0.1:1"]}}}
    old = configure(base)
    new = configure(
        {
            "upstreams": {"b": {"targets": ["http://127.0.0.1:2"]}},
            "routes": [{"id": "b", "path": "/b", "upstream": "b"}],
            "cors": {"allow_origins": ["https://example.com"]},
        }
    )
    effective, changes, restart = plan_reload(old, new)
    assert changes == ["upstreams added: b", "upstreams removed: a", "routes added: b"]
    assert restart == ["cors"]
    assert effective.cors == old.cors and list(effective.upstreams) == ["b"]


# -- SIGHUP and SIGTERM handlers, in this process ------------------------------------------


async def test_signals_reload_and_drain(
    gateway: Gateway, data: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "bff.yaml"
    path.write_text(yaml.safe_dump(data))
    stopped: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    control = ProcessControl(gateway, path)
    control.install()
    try:
        data["routes"].append({"id": "u3", "path": "/api/u3", "upstream": "users"})
        path.write_text(yaml.safe_dump(data))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if any(r.id == "u3" for r in gateway.config.routes):
                break
            await asyncio.sleep(0.01)
        assert [r.id for r in gateway.config.routes] == ["users", "slow", "u3"]

        path.write_text("routes: [{id: x}]\n")  # invalid: kept as it was
        result = await control.reload()
        assert not result.applied and ("routes[0].path", "is required") in result.problems
        assert [r.id for r in gateway.config.routes] == ["users", "slow", "u3"]

        assert gateway.ready
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if stopped:
                break
            await asyncio.sleep(0.01)
        assert stopped == [signal.SIGTERM]  # the server's own handler still runs
        assert not gateway.ready  # and /readyz says so from now on
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
            r = await c.get("/readyz")
            assert r.status_code == 503
    finally:
        control.uninstall()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
