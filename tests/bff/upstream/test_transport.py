"""The transport under `Upstream`: fair admission, the buffered path, local refusals."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from bff.errors import BadRequest, UpstreamUnavailable
from bff.upstream import Upstream
from bff.upstream.transport import BufferedResponse
from services import ServiceServer
from tests.support.servers import free_port


@pytest.fixture
def users_process() -> Iterator[str]:
    """The users service in its own process: the starvation below needs real parallelism
    between the service and the client (a thread in this process does not show it)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services", "--port-base", str(port), "--only", "users"],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(url + "/health", timeout=0.5)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


async def test_more_callers_than_connections_are_served_in_turn(users_process: str) -> None:
    """aiohttp alone hands a freed connection to the newest request, so with more callers than
    connections some wait until their pool timeout (32 of 15,000 requests here, measured
    without the fix); the transport admits them first come, first served."""
    upstream = Upstream(
        "users",
        [(users_process, 1)],
        max_connections=4,
        max_keepalive_connections=4,
        pool_timeout=0.5,
        connect_timeout=0.5,
    )
    failures: list[Exception] = []
    stop = time.monotonic() + 2.0

    async def caller() -> None:
        while time.monotonic() < stop:
            try:
                await upstream.request("GET", "/users/1")
            except Exception as exc:
                failures.append(exc)

    try:
        await asyncio.gather(*(caller() for _ in range(20)))
    finally:
        await upstream.aclose()
    assert failures == []


async def test_an_exhausted_pool_is_unavailable_not_an_upstream_failure() -> None:
    with ServiceServer("users", latency_ms=500) as users:
        upstream = Upstream(
            "users",
            [(users.url, 1)],
            max_connections=1,
            max_keepalive_connections=1,
            pool_timeout=0.05,
        )
        try:
            first = asyncio.ensure_future(upstream.request("GET", "/users/1"))
            await asyncio.sleep(0.05)
            with pytest.raises(UpstreamUnavailable):
                await upstream.request("GET", "/users/2")
            assert (await first).status_code == 200
            assert all(t.failures == 0 for t in upstream.targets)
        finally:
            await upstream.aclose()


async def test_buffered_responses_behave_like_httpx_responses() -> None:
    with ServiceServer("users") as users:
        upstream = Upstream("users", [(users.url, 1)])
        try:
            response = await upstream.request("GET", "/users/7")
        finally:
            await upstream.aclose()
    assert isinstance(response, BufferedResponse)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["name"] == "User 7"
    assert await response.aread() == response.content
    assert response.text.startswith("{")


async def test_a_request_refused_before_sending_is_not_held_against_the_upstream() -> None:
    with ServiceServer("users") as users:
        upstream = Upstream("users", [(users.url, 1)])
        try:
            with pytest.raises(BadRequest):
                await upstream.request("GET", "/users/1", headers=[("x-note", "a\r\nhost: evil")])
            assert (await upstream.request("GET", "/users/1")).status_code == 200
        finally:
            await upstream.aclose()
    assert upstream.targets[0].failures == 0
    assert upstream.breaker is None or upstream.breaker.describe()["state"] == "closed"
