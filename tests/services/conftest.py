"""Real sample services on free ports, and an httpx client to call them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services import SERVICE_NAMES, ServiceServer


def stop_all(servers: Iterable[ServiceServer]) -> None:
    """Stop servers side by side: each takes about 0.1 s to shut down."""
    with ThreadPoolExecutor() as pool:
        list(pool.map(ServiceServer.stop, servers))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServiceServer]]:
    """One server per service, shared by a module's tests: for tests that change no state."""
    started: dict[str, ServiceServer] = {}
    try:
        for name in SERVICE_NAMES:
            started[name] = ServiceServer(name).start()
        yield started
    finally:
        stop_all(started.values())


@pytest.fixture
def fresh() -> Iterator[Callable[..., ServiceServer]]:
    """A factory of servers private to one test (counters, created orders, latency)."""
    started: list[ServiceServer] = []

    def start(name: str, *, latency_ms: float = 0.0) -> ServiceServer:
        server = ServiceServer(name, latency_ms=latency_ms).start()
        started.append(server)
        return server

    yield start
    stop_all(started)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c
