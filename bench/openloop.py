"""An open-loop load generator: requests at a fixed rate, latency measured from the schedule.

``python -m bench.openloop URL --rate 1000 --duration 10`` prints JSON
``{"sent", "errors", "p50_ms", "p99_ms", "cpu_us_per_request"}`` (the generator's own CPU: it
shares a core with the upstreams and must stay well below saturating it). Each request is
started at its scheduled time whatever happened to the previous ones, and its latency counts
from that schedule, so a stall shows up in the percentiles instead of being hidden (coordinated
omission). wrk has no fixed-rate mode; this is what "added latency at N requests/s" is measured
with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import httpx
import uvloop

from bff.upstream.http1 import Http1Transport

# The generator shares its CPU with the sample services: it must cost little per request, or it
# becomes what is measured. The gateway's own HTTP/1.1 client costs about a fifth of aiohttp's.
_TIMEOUTS = {"connect": 5.0, "read": 30.0, "write": 5.0, "pool": 60.0}


async def _run(url: str, rate: float, duration: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    target = (parts.path or "/").encode() + (b"?" + parts.query.encode() if parts.query else b"")
    client = Http1Transport(max_connections=256, keepalive_expiry=60.0)

    async def one(scheduled: float) -> None:
        nonlocal errors
        try:
            response = await client.fetch("GET", origin, target, (), None, _TIMEOUTS)
            if response.status_code >= 400:
                errors += 1
        except httpx.HTTPError:
            errors += 1
        latencies.append(time.perf_counter() - scheduled)

    total = int(rate * duration)
    cpu_start = time.process_time()
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    cpu_us = (time.process_time() - cpu_start) * 1e6 / max(total, 1)
    await client.aclose()
    latencies.sort()
    n = len(latencies)
    return {
        "sent": n,
        "errors": errors,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "cpu_us_per_request": cpu_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    print(json.dumps(uvloop.run(_run(args.url, args.rate, args.duration))))


if __name__ == "__main__":
    main()
