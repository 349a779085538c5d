"""``python -m bench.latency_ab``: the latency a rate limiter adds to q2, end to end.

Two (or three) gateways run side by side on CPU 0 (``bff serve``, uvicorn, real sockets), the
sample services on CPU 1, and one client on CPU 1 sends q2 to each in turn, one request at a
time: A, B, C, A, B, C... Each request's latency is timed by the client (``perf_counter``), so
the figure is what a caller sees, uvicorn and the network included. Turn by turn, whatever else
the machine does hits every gateway alike, so the differences of the medians are what to read:

- ``none``: no rate limits;
- ``memory``: the plans of ``python -m bench ratelimit`` (per minute and per hour, token bucket,
  memory store, high enough never to refuse);
- ``redis`` (with ``--redis``): the same plans in a Redis pinned to CPU 1.

Prints, per gateway, the median, p90 and p99 latency and the gateway's CPU per request, and per
limited gateway what it adds to the median (microseconds and percent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import orjson
import uvloop

from bench.runner import cpu_seconds, gateway, gateway_config, redis_server, sample_services
from bench.scenarios import _NEVER_REFUSING, Q2
from bff.upstream.http1 import Http1Transport

_TIMEOUTS = {"connect": 5.0, "read": 30.0, "write": 5.0, "pool": 5.0}


def _variants(redis_url: str | None) -> dict[str, dict[str, Any]]:
    variants: dict[str, dict[str, Any]] = {
        "none": {},
        "memory": {"rate_limits": {"plans": _NEVER_REFUSING}},
    }
    if redis_url is not None:
        variants["redis"] = {
            "rate_limits": {"plans": _NEVER_REFUSING},
            "state": {"backend": "redis", "redis_url": redis_url},
        }
    return variants


async def _drive(
    origins: dict[str, str], requests: int, warmup: int, pids: dict[str, int]
) -> dict[str, Any]:
    body = orjson.dumps({"query": Q2})
    headers = [("content-type", "application/json")]
    client = Http1Transport(max_connections=len(origins))
    latencies: dict[str, list[float]] = {name: [] for name in origins}
    cpu: dict[str, float] = {}
    try:
        for phase, count in (("warmup", warmup), ("measure", requests)):
            if phase == "measure":
                cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
            for _ in range(count):
                for name, origin in origins.items():
                    started = time.perf_counter()
                    response = await client.fetch(
                        "POST", origin, b"/graphql/web", headers, body, _TIMEOUTS
                    )
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200 or b'"errors"' in response.content:
                        raise SystemExit(f"{name}: unexpected answer {response.status_code}")
                    if phase == "measure":
                        latencies[name].append(elapsed)
        cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
    finally:
        await client.aclose()
    out: dict[str, Any] = {}
    for name, values in latencies.items():
        values.sort()
        n = len(values)
        out[name] = {
            "p50_us": statistics.median(values) * 1e6,
            "p90_us": values[int(n * 0.9)] * 1e6,
            "p99_us": values[min(n - 1, int(n * 0.99))] * 1e6,
            "gateway_cpu_us": cpu[name] * 1e6 / n,
        }
    base = out["none"]["p50_us"]
    for name, figures in out.items():
        if name != "none":
            figures["added_p50_us"] = figures["p50_us"] - base
            figures["added_p50_percent"] = 100 * (figures["p50_us"] - base) / base
    return out


def run(requests: int, warmup: int, with_redis: bool) -> dict[str, Any]:
    """Start everything, drive it, stop everything; the figures by gateway."""
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server()) if with_redis else None
        urls = stack.enter_context(sample_services(0.0))
        origins: dict[str, str] = {}
        pids: dict[str, int] = {}
        for name, extra in _variants(redis_url).items():
            gw = stack.enter_context(gateway(gateway_config(urls, extra)))
            origins[name] = gw.url
            pids[name] = gw.pid
        with _pinned_to_load_cpu():
            return uvloop.run(_drive(origins, requests, warmup, pids))


@contextlib.contextmanager
def _pinned_to_load_cpu() -> Iterator[None]:
    import os

    from bench.runner import LOAD_CPU

    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_ab", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000, help="measured, per gateway")
    parser.add_argument("--warmup", type=int, default=1_000, help="per gateway")
    parser.add_argument("--redis", action="store_true", help="also a gateway limiting in Redis")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.requests, args.warmup, args.redis)
    print("| limits | p50 us | p90 us | p99 us | gateway CPU us/req | added to p50 |")
    print("|---|---|---|---|---|---|")
    for name, f in figures.items():
        added = (
            f"+{f['added_p50_us']:.1f} us ({f['added_p50_percent']:+.1f}%)"
            if "added_p50_us" in f
            else ""
        )
        print(
            f"| {name} | {f['p50_us']:.0f} | {f['p90_us']:.0f} | {f['p99_us']:.0f} | "
            f"{f['gateway_cpu_us']:.0f} | {added} |"
        )
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
