"""Start the sample services and the gateway pinned to CPUs, drive load with wrk, report.

The gateway runs alone on CPU 0; the sample services and wrk share CPU 1 (the services are fast
enough to outrun the gateway: see docs/services.md). Results: requests/s, p50 and p99 latency,
upstream requests per gateway request (from the services' ``/_stats``), and the gateway's peak RSS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

SERVICES = ("users", "orders", "products", "reviews")
GATEWAY_CPU = "0"
LOAD_CPU = "1"


@dataclass
class Result:
    """One measured load run."""

    scenario: str
    target: str
    connections: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: None when not counted (several processes per service keep separate counters).
    upstream_per_request: dict[str, float] | None = field(default_factory=dict)
    gateway_peak_rss_mb: float | None = None
    latency_ms: float = 0.0
    #: CPU time the gateway process spent per request (user + system), from /proc: robust to
    #: other load on the machine, unlike requests/s.
    gateway_cpu_ms: float | None = None

    def row(self) -> str:
        counts = self.upstream_per_request
        ups = "-" if counts is None else f"{sum(counts.values()):.2f}"
        rss = f"{self.gateway_peak_rss_mb:.0f}" if self.gateway_peak_rss_mb else "-"
        cpu = f"{self.gateway_cpu_ms:.3f}" if self.gateway_cpu_ms else "-"
        return (
            f"| {self.scenario} | {self.target} | {self.latency_ms:g} | {self.connections} | "
            f"{self.requests_per_s:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} | {cpu} | "
            f"{ups} | {rss} | {self.errors} |"
        )


HEADER = (
    "| scenario | target | upstream latency ms | connections | req/s | p50 ms | p99 ms | "
    "gateway CPU ms/req | upstream req/req | gateway peak RSS MB | errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinned(cpu: str, cmd: Sequence[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *cmd]
    return list(cmd)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def sample_services(latency_ms: float, processes: int = 1) -> Iterator[dict[str, str]]:
    """The four services on free ports, pinned to the load CPU."""
    base = _free_port_block(len(SERVICES))
    cmd = [
        sys.executable,
        "-m",
        "services",
        "--port-base",
        str(base),
        "--latency-ms",
        str(latency_ms),
        "--processes",
        str(processes),
    ]
    proc = subprocess.Popen(_pinned(LOAD_CPU, cmd), stdout=subprocess.DEVNULL)
    urls = {name: f"http://127.0.0.1:{base + i}" for i, name in enumerate(SERVICES)}
    try:
        for url in urls.values():
            _wait_http(url + "/health")
        yield urls
    finally:
        _stop(proc)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A ``redis-server`` on a free port, pinned to the load CPU (no persistence); its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    port = _free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(_pinned(LOAD_CPU, cmd), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


def _free_port_block(n: int) -> int:
    for _ in range(50):
        base = _free_port()
        if base + n >= 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise SystemExit("no block of free ports")


def gateway_config(urls: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A production-mode config for benchmarks: no auth required, no rate limits, no cache."""
    config: dict[str, Any] = {
        "mode": "production",
        "upstreams": {
            name: {
                "targets": [url],
                "retries": {"attempts": 0},
                "pool": {"max_connections": 256, "max_keepalive_connections": 256},
            }
            for name, url in urls.items()
        },
        "graphql": {
            "schema_modules": [
                "schema.users",
                "schema.orders",
                "schema.products",
                "schema.reviews",
            ],
            "apps": {
                "web": {"path": "/graphql/web", "max_depth": 20, "max_cost": 1000000},
                "mobile": {"path": "/graphql/mobile"},
            },
            # Every request executes (the `cached` scenario turns the response cache on).
            "response_cache": False,
        },
        "routes": [
            {"id": "users", "path": "/api/users", "upstream": "users", "strip_prefix": "/api"},
        ],
        "observability": {"access_log": "off", "log_level": "warning"},
    }
    if extra:
        _merge(config, extra)
    return config


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


@dataclass
class Gateway:
    url: str
    pid: int


@contextlib.contextmanager
def gateway(config: dict[str, Any]) -> Iterator[Gateway]:
    """``bff serve`` on a free port, pinned to the gateway CPU."""
    port = _free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
        path = f.name
    cmd = [sys.executable, "-m", "bff", "serve", "--config", path, "--port", str(port)]
    proc = subprocess.Popen(_pinned(GATEWAY_CPU, cmd), stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/healthz")
        yield Gateway(url, proc.pid)
    finally:
        _stop(proc)
        os.unlink(path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (the peak resident set) of a process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


_WRK_LUA = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run wrk pinned to the load CPU; returns requests/s, p50, p99 and error count."""
    wrk = ensure_wrk()
    script = _WRK_LUA.format(
        method=method,
        body=json.dumps(body.decode()) if body else "nil",
        headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    cmd = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        lua,
        url,
    ]
    try:
        out = subprocess.run(
            _pinned(LOAD_CPU, cmd), capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(lua)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "total": total}


def exact_upstream_counts(
    url: str, body: bytes, services: dict[str, str], requests: int = 20
) -> dict[str, float]:
    """Upstream requests per gateway request, counted on a quiet gateway.

    Counting around a wrk run would be off by the requests still in flight when it stops, so
    this sends ``requests`` requests one at a time after the load and reads ``/_stats``.
    """
    time.sleep(1.0)  # let the load run's in-flight requests drain
    reset_stats(services)
    with httpx.Client(timeout=30) as client:
        for _ in range(requests):
            client.post(url, content=body, headers={"content-type": "application/json"})
    return {k: v / requests for k, v in read_stats(services).items() if v}


def reset_stats(urls: dict[str, str]) -> None:
    for url in urls.values():
        httpx.post(url + "/_reset")


def read_stats(urls: dict[str, str]) -> dict[str, int]:
    return {name: int(httpx.get(url + "/_stats").json()["requests"]) for name, url in urls.items()}


def print_results(results: list[Result], as_json: bool) -> None:
    print(HEADER)
    for r in results:
        print(r.row())
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2))
