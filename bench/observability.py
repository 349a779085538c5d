"""``python -m bench.observability``: what telemetry adds to a request, in process.

The wrk scenarios (``python -m bench healthz q2``) measure the whole server, where a few
microseconds drown in the noise of a shared machine. This drives the gateway's ASGI app
directly (no sockets, no uvicorn; pinned to the gateway CPU, the sample services in their own
process on the other) with the same request many times, in alternating rounds of each
configuration, and reports the best round's microseconds per request:

- ``off``: ``observability.metrics.enabled: false``, ``access_log: off``, no tracing: the
  telemetry layer and the upstream stage are not installed;
- ``metrics``: Prometheus metrics and rolling windows (the default);
- ``metrics+log``: and a JSON access log line per request (written to /dev/null);
- ``metrics+log+tracing``: and tracing on with nothing sampled (``sample_ratio: 0``).

It also times the hooks deeper code calls (``span``, ``note_operation``, ``loader_batch``) with
tracing off, against an empty function call.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import timeit
from collections.abc import Callable
from typing import IO, Any

import orjson

from bench.runner import GATEWAY_CPU, gateway_config, sample_services
from bench.scenarios import Q2
from bff.config import validate_config
from bff.gateway import Gateway, build_gateway
from bff.observability import Telemetry, loader_batch, note_operation, span

CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"observability": {"metrics": {"enabled": False}, "access_log": "off"}},
    "metrics": {"observability": {"access_log": "off"}},
    "metrics+log": {"observability": {"access_log": "json"}},
    "metrics+log+tracing": {
        "observability": {
            "access_log": "json",
            "tracing": {"otlp_endpoint": "http://127.0.0.1:9", "sample_ratio": 0.0},
        }
    },
}


async def _drive(app: Any, method: str, path: str, body: bytes, n: int) -> float:
    """Seconds per request over ``n`` sequential requests."""
    headers = [(b"host", b"bench"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    request = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"{path} answered {message['status']}")

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": list(headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }

    start = time.perf_counter()
    for _ in range(n):
        await app(scope(), receive, send)
    return (time.perf_counter() - start) / n


async def _gateways(urls: dict[str, str], log: IO[bytes]) -> dict[str, Gateway]:
    out = {}
    for name, extra in CONFIGS.items():
        config = validate_config(gateway_config(urls, extra))
        telemetry = Telemetry.from_config(config.observability, access_log_stream=log)
        gateway = build_gateway(config, telemetry=telemetry)
        await gateway.startup()
        out[name] = gateway
    return out


async def measure(requests: int, rounds: int, log: IO[bytes]) -> dict[str, dict[str, float]]:
    # The sample services in a process of their own (on the load CPU), so their work is not
    # counted in the gateway's time.
    with sample_services(0) as urls:
        gateways = await _gateways(urls, log)
        body = orjson.dumps({"query": Q2})
        cases = {"healthz": ("GET", "/healthz", b""), "q2": ("POST", "/graphql/web", body)}
        best: dict[str, dict[str, float]] = {case: {} for case in cases}
        for case, (method, path, payload) in cases.items():
            for gw in gateways.values():  # warm-up: caches, connections
                await _drive(gw, method, path, payload, 200)
            for _ in range(rounds):
                for name, gw in gateways.items():
                    gc.collect()
                    t = await _drive(gw, method, path, payload, requests)
                    best[case][name] = min(best[case].get(name, t), t)
        for gw in gateways.values():
            await gw.shutdown()
        return best


def hooks() -> dict[str, float]:
    """Nanoseconds per call of each hook with no request open (tracing off)."""

    def nothing() -> None:
        return None

    def with_span() -> None:
        with span("graphql.execute", None):
            pass

    def with_batch() -> None:
        with loader_batch("orders", 10):
            pass

    calls: dict[str, Callable[[], Any]] = {
        "empty function": nothing,
        "span()": with_span,
        "loader_batch()": with_batch,
        "note_operation()": lambda: note_operation("web", "Q", "query"),
    }
    n = 200_000
    return {k: min(timeit.repeat(f, number=n, repeat=5)) / n * 1e9 for k, f in calls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per configuration")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(GATEWAY_CPU)})  # as the wrk scenarios pin the gateway
    with open(os.devnull, "wb") as devnull:
        best = asyncio.run(measure(args.requests, args.rounds, devnull))
    print("| request | " + " | ".join(CONFIGS) + " |")
    print("|---" * (len(CONFIGS) + 1) + "|")
    for case, by_config in best.items():
        base = by_config["off"]
        cells = [f"{by_config['off'] * 1e6:.1f} µs"]
        for name in list(CONFIGS)[1:]:
            cells.append(f"{by_config[name] * 1e6:.1f} µs (+{(by_config[name] - base) * 1e6:.1f})")
        print(f"| {case} | " + " | ".join(cells) + " |")
    print()
    print("| hook, no request open | ns per call |")
    print("|---|---|")
    for name, ns in hooks().items():
        print(f"| {name} | {ns:.0f} |")


if __name__ == "__main__":
    main()
