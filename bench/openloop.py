"""An open-loop load generator: requests at a fixed rate, latency measured from the schedule.

``python -m bench.openloop URL --rate 1000 --duration 10`` prints JSON
``{"sent", "errors", "p50_ms", "p99_ms"}``. Each request is started at its scheduled time
whatever happened to the previous ones, and its latency counts from that schedule, so a stall
shows up in the percentiles instead of being hidden (coordinated omission). wrk has no fixed-rate
mode; this is what "added latency at N requests/s" is measured with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import uvloop


async def _run(url: str, rate: float, duration: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)

        total = int(rate * duration)
        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    latencies.sort()
    n = len(latencies)
    return {
        "sent": n,
        "errors": errors,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
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
