"""``bff serve --workers 2``: every scrape shows the traffic of all workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bff.observability.metrics import SAMPLE_INTERVAL
from tests.support.servers import ThreadedServer, free_port


async def echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def requests_of(text: str, route: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bff_requests_total" and s.labels.get("name") == route
    )


@pytest.mark.slow
def test_workers_share_their_metrics(tmp_path: Path) -> None:
    with ThreadedServer(echo, lifespan="off") as upstream:
        port = free_port()
        config = {
            "listen": {"host": "127.0.0.1", "port": port, "drain_timeout": 1},
            "store": {"url": f"sqlite:///{tmp_path}/bff.db"},
            "admin": {"enabled": False},
            "upstreams": {"echo": {"targets": [upstream.url]}},
            "routes": [{"id": "echo", "path": "/echo", "upstream": "echo"}],
            "observability": {"access_log": "off", "log_level": "warning"},
        }
        path = tmp_path / "bff.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
        (tmp_path / "metrics").mkdir()
        (tmp_path / "metrics" / "counter_1.db").write_bytes(b"stale")  # a previous run's
        cmd = [sys.executable, "-m", "bff", "serve", "-c", str(path), "--workers", "2"]
        proc = subprocess.Popen(
            [*cmd, "--allow-local-state"], env=env, stderr=subprocess.PIPE, text=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
            for _ in range(30):  # a new connection each: the workers share the socket
                assert httpx.get(base + "/echo").status_code == 200
            # Each worker publishes its counts every SAMPLE_INTERVAL (the one answering a scrape,
            # at once): within that, every scrape shows all 30, whichever worker answers.
            time.sleep(SAMPLE_INTERVAL + 0.5)
            for _ in range(6):
                text = httpx.get(base + "/metrics").text
                assert requests_of(text, "echo") == 30
            assert "bff_requests_in_flight 0.0" in text
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
