"""``bff serve`` as a real process: SIGHUP reloads, SIGTERM drains, workers, ``bff reload``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.cli import main
from tests.conftest import SampleServices
from tests.support.fault_server import FaultApp
from tests.support.processes import GatewayProcess, write_config
from tests.support.servers import ThreadedServer, free_port


@pytest.fixture(scope="module")
def slow() -> Iterator[ThreadedServer]:
    server = ThreadedServer(FaultApp("slow")).start()
    yield server
    server.stop()


def config_data(services: SampleServices, slow: ThreadedServer, tmp: Path) -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": 8080, "drain_timeout": 5},
        "store": {"url": f"sqlite:///{tmp}/bff.db"},
        "upstreams": {
            "users": {"targets": [services["users"].url]},
            "reviews": {"targets": [services["reviews"].url]},
            "slow": {"targets": [slow.url]},
        },
        "routes": [
            {"id": "users", "path": "/api/users", "upstream": "users", "strip_prefix": "/api"},
            {"id": "slow", "path": "/slow", "upstream": "slow"},
        ],
        "observability": {"access_log": "off", "log_level": "info"},
    }


REVIEWS = {"id": "reviews", "path": "/api/reviews", "upstream": "reviews", "strip_prefix": "/api"}


def wait_status(url: str, want: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(url).status_code
        if status == want:
            return
        assert time.monotonic() < deadline, f"{url}: {status}, never {want}"
        time.sleep(0.05)


@pytest.mark.slow
def test_sighup_reloads_a_valid_file_and_rejects_an_invalid_one(
    services: SampleServices, slow: ThreadedServer, tmp_path: Path, capsys: Any
) -> None:
    data = config_data(services, slow, tmp_path)
    path = write_config(tmp_path / "bff.yaml", data)
    with GatewayProcess(path) as gw:
        reviews = gw.url + "/api/reviews?product_ids=1"
        assert httpx.get(reviews).status_code == 404

        # Valid: through `bff reload --pidfile`, which checks the file first with --config.
        data["routes"].append(REVIEWS)
        write_config(path, data)
        assert main(["reload", "--pidfile", str(gw.pidfile), "--config", str(path)]) == 0
        assert f"sent SIGHUP to bff (pid {gw.pid})" in capsys.readouterr().out
        wait_status(reviews, 200)
        gw.wait_for_log("configuration reloaded: routes added: reviews")

        # Invalid: the problems are logged, the running configuration stays.
        mark = len(gw.log())
        data["routes"].append({"id": "broken", "path": "/api/broken", "upstream": "nope"})
        write_config(path, data)
        assert main(["reload", "--pidfile", str(gw.pidfile), "--config", str(path)]) == 2
        assert "routes[3].upstream: unknown upstream 'nope'" in capsys.readouterr().err
        gw.signal(signal.SIGHUP)  # sent anyway: the gateway refuses it itself
        log = gw.wait_for_log("configuration reload rejected", after=mark)
        assert "routes[3].upstream: unknown upstream 'nope'" in log[mark:]
        assert httpx.get(reviews).status_code == 200
        assert httpx.get(gw.url + "/api/users/1").status_code == 200

        # What cannot change without a restart is said so, the rest applies.
        mark = len(gw.log())
        data["routes"].pop()
        data["routes"].pop()  # reviews goes away again
        data["listen"]["port"] = 1
        write_config(path, data)
        gw.signal(signal.SIGHUP)
        log = gw.wait_for_log("configuration reloaded: routes removed: reviews", after=mark)
        assert "listen changed; restart the gateway to apply it" in log[mark:]
        wait_status(reviews, 404)
        assert httpx.get(gw.url + "/healthz").status_code == 200  # still on its port
        assert gw.stop() == 0
    assert not gw.pidfile.exists()


@pytest.mark.slow
async def test_sigterm_drains_a_slow_request(
    services: SampleServices, slow: ThreadedServer, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "bff.yaml", config_data(services, slow, tmp_path))
    with GatewayProcess(path) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            in_flight = asyncio.create_task(client.get("/slow", params={"ms": "1500"}))
            await asyncio.sleep(0.3)
            sent = time.monotonic()
            gw.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no longer accepting
                await httpx.AsyncClient().get(gw.url + "/healthz")
            answer = await in_flight
            assert answer.status_code == 200 and answer.json()["path"] == "/slow"
        status = await asyncio.to_thread(gw.wait, 10)
        took = time.monotonic() - sent
        assert status == 0
        assert took < 5, took  # gone once the request was done, not at the drain timeout
        log = gw.log()
        assert "draining: not ready any more" in log
        assert "Application shutdown complete" in log
        assert not gw.pidfile.exists()


@pytest.mark.slow
async def test_the_drain_timeout_bounds_the_shutdown(
    services: SampleServices, slow: ThreadedServer, tmp_path: Path
) -> None:
    data = config_data(services, slow, tmp_path)
    data["listen"]["drain_timeout"] = 1
    path = write_config(tmp_path / "bff.yaml", data)
    with GatewayProcess(path) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            in_flight = asyncio.create_task(client.get("/slow", params={"ms": "4000"}))
            await asyncio.sleep(0.3)
            sent = time.monotonic()
            gw.signal(signal.SIGTERM)
            status = await asyncio.to_thread(gw.wait, 15)
            took = time.monotonic() - sent
            try:
                answer = await in_flight
            except httpx.HTTPError:
                pass  # cut off
            else:
                assert answer.status_code >= 500  # cancelled before it could answer
        assert status == 0
        assert took < 3.5, took  # about the drain timeout (1 s), far less than the request


def test_workers_with_local_state_are_refused(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "bff.yaml",
        {"store": {"url": f"sqlite:///{tmp_path}/bff.db"}, "state": {"backend": "memory"}},
    )
    done = subprocess.run(
        [sys.executable, "-m", "bff", "serve", "--config", str(path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bff: refusing to start 2 workers with state.backend: memory")
    assert "--allow-local-state" in lines[0] and "redis" in lines[0]


@pytest.mark.slow
def test_workers_serve_reload_and_stop(
    services: SampleServices, slow: ThreadedServer, tmp_path: Path
) -> None:
    data = config_data(services, slow, tmp_path)
    path = write_config(tmp_path / "bff.yaml", data)
    args = ["--workers", "2", "--allow-local-state"]
    with GatewayProcess(path, args=args) as gw:
        gw.wait_for_log("Started parent process")
        # Both workers up: the log must hold the line twice (waiting for it twice would find
        # the first worker's line both times and signal a worker that is still starting).
        deadline = time.monotonic() + 30
        while gw.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, gw.log()
            time.sleep(0.05)
        reviews = gw.url + "/api/reviews?product_ids=1"
        data["routes"].append(REVIEWS)
        write_config(path, data)
        gw.signal(signal.SIGHUP)  # to the supervisor, which passes it on to every worker
        gw.wait_for_log("reloading the configuration in 2 worker(s)")
        deadline = time.monotonic() + 15
        while gw.log().count("configuration reloaded: routes added: reviews") < 2:
            assert time.monotonic() < deadline, gw.log()
            time.sleep(0.05)
        # New connections land on either worker: all serve the new route.
        codes = {httpx.get(reviews, headers={"connection": "close"}).status_code for _ in range(20)}
        assert codes == {200}
        assert gw.stop() == 0
    assert not gw.pidfile.exists()


def test_reload_needs_a_running_gateway(tmp_path: Path, capsys: Any) -> None:
    assert main(["reload", "--pidfile", str(tmp_path / "none.pid")]) == 1
    assert "no such pidfile" in capsys.readouterr().err
    (tmp_path / "bad.pid").write_text("nope")
    assert main(["reload", "--pidfile", str(tmp_path / "bad.pid")]) == 1
    assert "not a pidfile" in capsys.readouterr().err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert main(["reload", "--pid", str(dead.pid)]) == 1
    assert f"no process {dead.pid}" in capsys.readouterr().err


def test_a_live_pidfile_is_not_taken_over(tmp_path: Path) -> None:
    pidfile = tmp_path / "bff.pid"
    pidfile.write_text(f"{__import__('os').getpid()}\n")  # this very process: alive
    path = write_config(tmp_path / "bff.yaml", {"store": {"url": f"sqlite:///{tmp_path}/b.db"}})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bff",
            "serve",
            "--config",
            str(path),
            "--port",
            str(free_port()),
            "--pidfile",
            str(pidfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "is running with this pidfile" in done.stderr
