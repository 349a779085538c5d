"""The upstream transports compared: ``python -m bench.transport [--duration S] [--json]``.

The sample ``users`` service runs in its own process on CPU 1; this process, pinned to CPU 0 and
running uvloop as the gateway does, drives it with N workers (N in 1, 32, 128), each awaiting one
request after another. Five clients share the same pool limits (the gateway's defaults):

- ``upstream/native``, ``upstream/httpx``, ``upstream/aiohttp``: :class:`bff.upstream.Upstream`
  with each transport,
  through the full chain (``get_json`` for the batch, ``request`` for the item);
- ``raw/httpx``, ``raw/aiohttp``: a bare ``httpx.AsyncClient`` and ``aiohttp.ClientSession``, the
  reference for what the httpx API and the chain cost on top of each pool.

Each case runs a warm-up, then a measured window: requests/s, p50/p99 latency of the requests that
completed in it, CPU time of this process per request, the CPU use of both processes (a side near
100 % is the bottleneck), failed requests, and "stalled" ones: requests in flight for the whole
window (starved by their pool, or slower than the window), which the latencies leave out.
``--runs N`` repeats the matrix, interleaved, and shows each figure's median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp
import httpx
import orjson
import uvloop

from bff.config import PoolConfig
from bff.upstream import Upstream

__all__ = ["Case", "Measurement", "main", "measure"]

BENCH_CPU = 0
SERVICE_CPU = 1
CONCURRENCIES = (1, 32, 128)
Client = Literal[
    "upstream/native", "upstream/httpx", "upstream/aiohttp", "raw/httpx", "raw/aiohttp"
]
CLIENTS: tuple[Client, ...] = (
    "upstream/native",
    "upstream/httpx",
    "upstream/aiohttp",
    "raw/httpx",
    "raw/aiohttp",
)
Kind = Literal["batch", "item"]
KINDS: tuple[Kind, ...] = ("batch", "item")

IDS = ",".join(str(i) for i in range(1, 21))
PATHS: dict[Kind, str] = {"batch": f"/users?ids={IDS}", "item": "/users/7"}
_TICK = os.sysconf("SC_CLK_TCK")

Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    """One cell of the matrix."""

    client: Client
    kind: Kind
    concurrency: int


@dataclass
class Measurement:
    """What one case measured (or, after :func:`median`, the median of several runs)."""

    client: str
    request: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    bench_cpu_pct: float
    service_cpu_pct: float
    errors: int
    stalled: int
    error_types: dict[str, int] = field(default_factory=dict)
    runs: int = 1

    def row(self) -> str:
        """This measurement as a markdown table row."""
        return (
            f"| {self.client} | {self.request} | {self.concurrency} | "
            f"{self.requests_per_s:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} | "
            f"{self.cpu_us_per_request:.0f} | {self.bench_cpu_pct:.0f} | "
            f"{self.service_cpu_pct:.0f} | {self.errors} | {self.stalled} |"
        )


HEADER = (
    "| client | request | concurrency | req/s | p50 ms | p99 ms | CPU µs/req | bench CPU % "
    "| service CPU % | errors | stalled |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


# -- the clients -------------------------------------------------------------------------------


def _check(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"status {status}")


@contextlib.asynccontextmanager
async def open_client(client: Client, base_url: str, kind: Kind) -> AsyncIterator[Call]:
    """A fresh pool for ``client`` and the call one worker repeats; closed on exit."""
    pool = PoolConfig()
    if client.startswith("upstream/"):
        upstream = Upstream(
            "users",
            [(base_url, 1)],
            transport=client.removeprefix("upstream/"),  # type: ignore[arg-type]
            max_connections=pool.max_connections,
            max_keepalive_connections=pool.max_keepalive_connections,
            keepalive_expiry=pool.keepalive_expiry,
        )

        async def upstream_batch() -> object:
            return await upstream.get_json("/users", {"ids": IDS})

        async def upstream_item() -> object:
            response = await upstream.request("GET", "/users/7")
            _check(response.status_code)
            return response.content

        try:
            yield upstream_batch if kind == "batch" else upstream_item
        finally:
            await upstream.aclose()
    elif client == "raw/httpx":
        limits = httpx.Limits(
            max_connections=pool.max_connections,
            max_keepalive_connections=pool.max_keepalive_connections,
            keepalive_expiry=pool.keepalive_expiry,
        )
        url = base_url + PATHS[kind]
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as http:

            async def httpx_get() -> object:
                response = await http.get(url)
                _check(response.status_code)
                return orjson.loads(response.content) if kind == "batch" else response.content

            yield httpx_get
    else:
        # AiohttpTransport's pool, without the httpx API around it nor per-request timeouts.
        connector = aiohttp.TCPConnector(
            limit=pool.max_connections,
            limit_per_host=0,
            keepalive_timeout=pool.keepalive_expiry,
            ttl_dns_cache=300,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=10.0),
        )
        url = base_url + PATHS[kind]
        async with session:

            async def aiohttp_get() -> object:
                async with session.get(url) as response:
                    _check(response.status)
                    body = await response.read()
                return orjson.loads(body) if kind == "batch" else body

            yield aiohttp_get


# -- one measured case -------------------------------------------------------------------------


@dataclass
class _Window:
    recording: bool = False
    stopping: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    # When each worker's current request began: one still running since before the window
    # opened was starved by its pool, and its latency would otherwise be missing from p99.
    started: list[float] = field(default_factory=list)


async def _worker(call: Call, window: _Window, slot: int) -> None:
    clock = time.perf_counter
    latencies = window.latencies
    while not window.stopping:
        start = window.started[slot] = clock()
        try:
            await call()
        except Exception as exc:
            if window.recording:
                name = _error_name(exc)
                window.errors[name] = window.errors.get(name, 0) + 1
            continue
        if window.recording:
            latencies.append(clock() - start)


def _error_name(exc: BaseException) -> str:
    """``UpstreamTimeout(ConnectTimeout)``: the error and, when it wraps one, its cause."""
    cause = exc.__cause__
    return type(exc).__name__ + (f"({type(cause).__name__})" if cause is not None else "")


def _merged(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for name, n in one.items():
            total[name] = total.get(name, 0) + n
    return total


def _service_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


async def measure(
    case: Case, base_url: str, service_pid: int, *, warmup: float, duration: float
) -> Measurement:
    """Run ``case``: ``warmup`` seconds unrecorded, then ``duration`` seconds measured."""
    window = _Window(started=[math.inf] * case.concurrency)
    async with open_client(case.client, base_url, case.kind) as call:
        workers = [asyncio.create_task(_worker(call, window, i)) for i in range(case.concurrency)]
        await asyncio.sleep(warmup)
        gc.collect()
        window.recording = True
        wall0, cpu0, svc0 = time.perf_counter(), time.process_time(), _service_cpu_s(service_pid)
        await asyncio.sleep(duration)
        window.recording = False
        wall1, cpu1, svc1 = time.perf_counter(), time.process_time(), _service_cpu_s(service_pid)
        stalled = sum(started < wall0 for started in window.started)
        window.stopping = True
        await asyncio.gather(*workers)
    elapsed = wall1 - wall0
    done = len(window.latencies)
    latencies = sorted(window.latencies)
    return Measurement(
        client=case.client,
        request=case.kind,
        concurrency=case.concurrency,
        requests_per_s=done / elapsed,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        cpu_us_per_request=(cpu1 - cpu0) / done * 1e6 if done else float("nan"),
        bench_cpu_pct=(cpu1 - cpu0) / elapsed * 100,
        service_cpu_pct=(svc1 - svc0) / elapsed * 100,
        errors=sum(window.errors.values()),
        stalled=stalled,
        error_types=window.errors,
    )


def median(runs: list[Measurement]) -> Measurement:
    """The per-metric median of several runs of one case."""
    first = runs[0]

    def med(name: str) -> float:
        return statistics.median(getattr(m, name) for m in runs)

    return Measurement(
        client=first.client,
        request=first.request,
        concurrency=first.concurrency,
        requests_per_s=med("requests_per_s"),
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        cpu_us_per_request=med("cpu_us_per_request"),
        bench_cpu_pct=med("bench_cpu_pct"),
        service_cpu_pct=med("service_cpu_pct"),
        errors=sum(m.errors for m in runs),
        stalled=round(med("stalled")),
        error_types=_merged(m.error_types for m in runs),
        runs=len(runs),
    )


# -- the service process -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def users_service() -> Iterator[tuple[str, int]]:
    """The sample users service pinned to the service CPU: ``(url, pid)``."""
    port = _free_port()
    cmd = [sys.executable, "-m", "services", "--port-base", str(port), "--only", "users"]
    if (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", str(SERVICE_CPU), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)  # taskset execs: same pid
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the users service did not come up on {url}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- the command -------------------------------------------------------------------------------


def run_matrix(
    url: str, pid: int, *, runs: int, warmup: float, duration: float
) -> list[Measurement]:
    """Every case ``runs`` times, interleaved so that background load hits all clients alike."""
    cases = [Case(c, k, n) for k in KINDS for n in CONCURRENCIES for c in CLIENTS]
    results: dict[Case, list[Measurement]] = {case: [] for case in cases}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for run in range(runs):
            for case in cases:
                m = runner.run(measure(case, url, pid, warmup=warmup, duration=duration))
                results[case].append(m)
                print(f"run {run + 1}/{runs}: {m.row()}", file=sys.stderr, flush=True)
    return [median(ms) for ms in results.values()]


def main(argv: list[str] | None = None) -> None:
    """Parse the options, pin, start the service, run every case, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.transport", description=__doc__)
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per case")
    parser.add_argument("--runs", type=int, default=1, help="runs of the matrix; medians shown")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    # SIGTERM must unwind like Ctrl-C does, so that the service process is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {BENCH_CPU})
    load_before = os.getloadavg()
    with users_service() as (url, pid):
        results = run_matrix(url, pid, runs=args.runs, warmup=args.warmup, duration=args.duration)
    load_after = os.getloadavg()
    print(HEADER)
    for m in results:
        print(m.row())
    for m in results:
        if m.errors:
            print(f"\nerrors of {m.client} {m.request} x{m.concurrency}: {m.error_types}")
    loads = " → ".join(", ".join(f"{x:.2f}" for x in la) for la in (load_before, load_after))
    print(f"\nload average (1, 5, 15 min) before → after: {loads}")
    if args.json:
        doc: dict[str, Any] = {
            "load_average": {"before": load_before, "after": load_after},
            "duration_s": args.duration,
            "results": [asdict(m) for m in results],
        }
        print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
