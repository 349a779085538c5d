"""1 GiB up and 1 GiB down through a real gateway process, its memory measured from /proc."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.fault_server import FaultApp
from tests.support.servers import ThreadedServer, free_port

GIB = 1 << 30
CHUNK = 1 << 20

_RUN_GATEWAY = textwrap.dedent(
    """
    import sys, uvicorn
    from bff.config import load_config
    from bff.gateway import build_gateway
    uvicorn.run(
        build_gateway(load_config(sys.argv[1])),
        host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
        lifespan="on", log_level="warning", access_log=False,
    )
    """
)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's resident set every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedServer]:
    with ThreadedServer(FaultApp("big")) as server:
        yield server


@pytest.fixture(scope="module")
def gateway_process(
    upstream: ThreadedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    config = {
        "store": {"url": "sqlite:///:memory:"},
        "admin": {"enabled": False},
        "upstreams": {"big": {"targets": [upstream.url], "timeout": {"read": 30}}},
        "routes": [
            {
                "id": "big",
                "path": "/big",
                "upstream": "big",
                "strip_prefix": "/big",
                "max_body_bytes": 2 * GIB,
                "timeout": 120,
            }
        ],
    }
    path = tmp_path_factory.mktemp("gw") / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _RUN_GATEWAY, str(path), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway process did not start")
            time.sleep(0.05)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(10)


async def _upload(client: httpx.AsyncClient, size: int) -> int:
    async def body() -> AsyncIterator[bytes]:
        block = b"u" * CHUNK
        for _ in range(size // CHUNK):
            yield block

    response = await client.put("/big/echo/upload", content=body())
    assert response.status_code == 200, response.text
    return int(response.json()["body_size"])


async def _download(client: httpx.AsyncClient, size: int) -> int:
    received = 0
    async with client.stream("GET", "/big/bytes", params={"n": size}) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        async for chunk in response.aiter_raw():
            received += len(chunk)
    return received


@pytest.mark.slow
async def test_a_gibibyte_each_way_with_flat_memory(
    gateway_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = gateway_process
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        # Warm up: pools, buffers and code paths exist before the baseline is taken.
        assert await _upload(client, 16 * CHUNK) == 16 * CHUNK
        assert await _download(client, 16 * CHUNK) == 16 * CHUNK
        baseline = rss_bytes(proc.pid)
        started = time.monotonic()
        with PeakRss(proc.pid) as peak:
            assert await _upload(client, GIB) == GIB
            assert await _download(client, GIB) == GIB
        elapsed = time.monotonic() - started
    growth = peak.peak - baseline
    print(
        f"\n2 GiB through the gateway in {elapsed:.1f}s; RSS baseline {baseline >> 20} MiB, "
        f"peak {peak.peak >> 20} MiB, growth {growth / (1 << 20):.1f} MiB"
    )
    assert growth < 30 * (1 << 20)
