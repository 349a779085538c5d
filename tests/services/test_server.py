"""Test aids (/_stats, /_reset, latency), ServiceServer's life cycle, and the command line."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import services
from services import ServiceServer, cli

from .test_services import assert_error

REPO = Path(services.__file__).resolve().parent.parent

Fresh = Callable[..., ServiceServer]


def test_stats_count_by_route_template(fresh: Fresh, client: httpx.Client) -> None:
    users = fresh("users")
    for path in ["/users?ids=1", "/users", "/users/1", "/users/2", "/users/abc", "/nope", "/"]:
        client.get(users.url + path)
    client.post(users.url + "/users")  # a 405 still hit the /users route
    # The aids are not counted.
    client.get(users.url + "/health")
    client.get(users.url + "/_stats")
    client.get(users.url + "/_latency")
    stats = client.get(users.url + "/_stats").json()
    assert stats == {
        "requests": 8,
        "by_path": {"/users": 3, "/users/{id}": 3, "other": 2},
    }
    assert users.app.stats() == stats


@pytest.mark.parametrize(
    ("name", "templates"),
    [
        ("users", ["/users", "/users/{id}"]),
        ("orders", ["/orders", "/orders/{id}"]),
        ("products", ["/products", "/products/{id}"]),
        ("reviews", ["/reviews"]),
    ],
)
def test_stats_keys_per_service(
    servers: dict[str, ServiceServer], client: httpx.Client, name: str, templates: list[str]
) -> None:
    stats = client.get(servers[name].url + "/_stats").json()
    assert sorted(stats["by_path"]) == sorted([*templates, "other"])
    assert stats["requests"] == sum(stats["by_path"].values())


def test_reset_zeroes_counters_but_keeps_created_orders(fresh: Fresh, client: httpx.Client) -> None:
    orders = fresh("orders")
    body = {"user_id": 5, "lines": [{"product_id": 5, "quantity": 1}]}
    created = client.post(orders.url + "/orders", json=body).json()
    client.get(orders.url + "/orders/10")
    assert client.get(orders.url + "/_stats").json() == {
        "requests": 2,
        "by_path": {"/orders": 1, "/orders/{id}": 1, "other": 0},
    }

    r = client.post(orders.url + "/_reset")
    assert r.status_code == 204
    assert r.content == b""
    assert client.get(orders.url + "/_stats").json() == {
        "requests": 0,
        "by_path": {"/orders": 0, "/orders/{id}": 0, "other": 0},
    }
    assert client.get(f"{orders.url}/orders/{created['id']}").json() == created


def test_latency_delays_counted_requests(fresh: Fresh, client: httpx.Client) -> None:
    users = fresh("users", latency_ms=150)
    started = time.perf_counter()
    assert client.get(users.url + "/users/1").status_code == 200
    assert time.perf_counter() - started >= 0.15

    started = time.perf_counter()
    assert_error(client.get(users.url + "/missing"), 404)
    assert time.perf_counter() - started >= 0.15

    # Aids answer at once, whatever the latency.
    started = time.perf_counter()
    client.get(users.url + "/health")
    client.get(users.url + "/_stats")
    assert time.perf_counter() - started < 0.15


def test_latency_toggle_at_run_time(fresh: Fresh, client: httpx.Client) -> None:
    users = fresh("users")
    r = client.post(users.url + "/_latency", params={"ms": "120"})
    assert r.status_code == 200
    assert r.json() == {"latency_ms": 120.0}
    assert client.get(users.url + "/_latency").json() == {"latency_ms": 120.0}
    started = time.perf_counter()
    client.get(users.url + "/users/1")
    assert time.perf_counter() - started >= 0.12

    assert client.post(users.url + "/_latency?ms=0").json() == {"latency_ms": 0.0}
    users.latency_ms = 2.5
    assert client.get(users.url + "/_latency").json() == {"latency_ms": 2.5}
    for bad in ["?ms=-1", "?ms=abc", "?ms=nan", "?ms=inf", ""]:
        assert_error(client.post(users.url + "/_latency" + bad), 400, "bad_request")
    assert users.latency_ms == 2.5
    # Toggling latency is not a counted request.
    assert client.get(users.url + "/_stats").json()["requests"] == 1


async def test_latency_does_not_serialize_requests(fresh: Fresh) -> None:
    users = fresh("users", latency_ms=200)
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.get(f"{users.url}/users/{i}") for i in range(1, 21))
        )
        elapsed = time.perf_counter() - started
    assert [r.status_code for r in responses] == [200] * 20
    assert 0.2 <= elapsed < 1.0


def test_server_stop_and_restart_on_the_same_port(client: httpx.Client) -> None:
    server = ServiceServer("products")
    with pytest.raises(RuntimeError, match="start"):
        _ = server.url
    server.start()
    try:
        url, port = server.url, server.port
        assert url == f"http://127.0.0.1:{port}"
        assert server.running
        with pytest.raises(RuntimeError, match="already"):
            server.start()
        assert client.get(url + "/products/1").status_code == 200

        server.stop()
        assert not server.running
        with pytest.raises(httpx.ConnectError):
            # A new client: the old one's pooled connection was closed by the server.
            httpx.get(url + "/health", timeout=2)
        server.stop()  # idempotent

        server.restart()
        assert server.port == port
        assert server.url == url
        assert client.get(url + "/products/1").status_code == 200
        # Same app across restarts: counters carry on.
        assert client.get(url + "/_stats").json()["by_path"]["/products/{id}"] == 2

        server.restart()  # also from running
        assert client.get(url + "/health").json() == {"status": "ok"}
    finally:
        server.stop()


def test_server_as_context_manager_and_fixed_port(client: httpx.Client) -> None:
    with ServiceServer("reviews") as first:
        port = first.port
        # The port is taken while the first server runs.
        with pytest.raises(OSError):
            ServiceServer("reviews", port=port).start()
    with ServiceServer("reviews", port=port) as second:
        assert client.get(second.url + "/reviews?product_ids=7").status_code == 200
    assert not second.running


def test_server_rejects_unknown_service() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        ServiceServer("inventory")


def test_public_api() -> None:
    assert services.SERVICE_NAMES == ("users", "orders", "products", "reviews")
    assert set(services.__all__) >= {"SERVICE_NAMES", "ServiceServer", "create_app", "run_all"}


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ["--port-base", "--host", "--latency-ms", "--only", "--processes"]:
        assert option in out


@pytest.mark.parametrize(
    "argv", [["--only", "users,bogus"], ["--processes", "0"], ["--latency-ms", "-5"]]
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_line(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from python -m services"
    return proc.stdout.readline()


@pytest.fixture
def run_cli() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services", *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_python_m_services(
    run_cli: Callable[..., subprocess.Popen[str]], client: httpx.Client, processes: str
) -> None:
    # Only orders, so only its port (port_base + 1) must be free.
    port = free_port()
    proc = run_cli("--port-base", str(port - 1), "--only", "orders", "--processes", processes)
    line = read_line(proc)
    assert line.split() == ["orders", f"http://127.0.0.1:{port}"], proc.stderr
    url = line.split()[1]
    for _ in range(10):  # new connections, spread over the workers
        with httpx.Client() as fresh_client:
            assert fresh_client.get(url + "/orders/10").json()["id"] == 10
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)


def test_python_m_services_port_taken(run_cli: Callable[..., subprocess.Popen[str]]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("--port-base", str(port), "--only", "users")
        assert proc.wait(timeout=15) == 1
        assert proc.stderr is not None
        assert "services:" in proc.stderr.read()
