r"""``python -m bench.ratelimit_inprocess``: what the in-memory rate limiter adds to q2, in process.

The wrk scenario (``python -m bench ratelimit``) measures the whole server, where ten
microseconds drown in a shared machine's noise. This drives the gateway's ASGI app directly (no
sockets, no uvicorn) on CPU 0, with the sample services in their own process pinned to CPU 1, and
counts the CPU time (``time.process_time``) of sequential q2 requests in alternating rounds of
two gateways built in the same process:

- ``none``: no rate limits;
- ``memory``: the plans of ``python -m bench ratelimit`` (two windows, per minute and per hour,
  token bucket, memory store, high enough never to refuse).

A round is ``--requests`` requests to each gateway, sent in blocks of ``--block`` alternating
between them (ABBA...), so whatever else the machine is doing hits both alike. It reports the
median round of each, in microseconds of CPU per request, and the median of the rounds'
differences. Both run in the same conditions, so the difference is what to compare across runs
(absolute figures move with the machine and with the rest of the gateway).

Instructions rather than time, without any noise (``--markers``: one callgrind profile per
block, the first and the last being start-up and shut-down)::

    valgrind --tool=callgrind --dump-before=getppid --callgrind-out-file=/tmp/cg.%p \
        python -m bench.ratelimit_inprocess --markers --rounds 2 --requests 200 --block 200
    grep -h '^summary' $(ls /tmp/cg.*.* | sort -t. -k3 -n)   # blocks in the order printed
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from typing import Any

import orjson

from bench.runner import GATEWAY_CPU, gateway_config, sample_services
from bench.scenarios import _NEVER_REFUSING, Q2
from bff.config import validate_config
from bff.gateway import Gateway, build_gateway

CONFIGS: dict[str, dict[str, Any]] = {
    "none": {},
    "memory": {"rate_limits": {"plans": _NEVER_REFUSING}},
}

_QUOTA_HEADERS = {
    b"ratelimit-limit",
    b"ratelimit-remaining",
    b"ratelimit-reset",
    b"x-ratelimit-limit",
    b"x-ratelimit-remaining",
    b"x-ratelimit-reset",
}


class _Client:
    """Sends one request to an ASGI app and keeps what came back (for the sanity check)."""

    def __init__(self, path: str, body: bytes) -> None:
        self.path = path
        self.headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        self.request = {"type": "http.request", "body": body, "more_body": False}
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        return self.request

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.status != 200:
                raise SystemExit(f"{self.path} answered {self.status}")
            self.response_headers = message.get("headers", [])
        else:
            self.body = message.get("body", b"")

    def scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": list(self.headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }

    async def run(self, app: Any, n: int) -> float:
        """CPU seconds per request over ``n`` sequential requests."""
        receive, send, scope = self.receive, self.send, self.scope
        start = time.process_time()
        for _ in range(n):
            await app(scope(), receive, send)
        return (time.process_time() - start) / n


async def _gateways(urls: dict[str, str]) -> dict[str, Gateway]:
    out = {}
    for name, extra in CONFIGS.items():
        gateway = build_gateway(validate_config(gateway_config(urls, extra)))
        await gateway.startup()
        out[name] = gateway
    return out


def _check(name: str, client: _Client) -> None:
    """Each gateway answers as configured: quota headers and ``extensions.cost`` or neither."""
    names = {k for k, _ in client.response_headers} & _QUOTA_HEADERS
    cost = orjson.loads(client.body).get("extensions", {}).get("cost")
    limited = name != "none"
    if (names == _QUOTA_HEADERS) != limited or (cost is not None) != limited:
        raise SystemExit(f"{name}: unexpected answer (quota headers {sorted(names)}, cost {cost})")


async def measure(
    requests: int, rounds: int, block: int, markers: bool = False
) -> dict[str, list[float]]:
    """Per configuration, the CPU seconds per request of each round. ``markers``: call
    ``os.getppid()`` before each block and print which gateway the block was for."""
    with sample_services(0) as urls:
        gateways = await _gateways(urls)
        client = _Client("/graphql/web", orjson.dumps({"query": Q2}))
        for name, gw in gateways.items():  # warm-up: caches, connections, the limiter's counter
            await client.run(gw, 300)
            _check(name, client)
        times: dict[str, list[float]] = {name: [] for name in gateways}
        order = list(gateways.items())
        blocks = max(1, requests // block)
        for _ in range(rounds):
            gc.collect()
            spent = dict.fromkeys(gateways, 0.0)
            for i in range(blocks):
                for name, gw in order if i % 2 == 0 else reversed(order):
                    if markers:
                        os.getppid()
                        print("block", name, flush=True)
                    spent[name] += await client.run(gw, block) * block
            for name in gateways:
                times[name].append(spent[name] / (blocks * block))
        if markers:
            os.getppid()
        for gw in gateways.values():
            await gw.shutdown()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ratelimit_inprocess",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per configuration")
    parser.add_argument("--block", type=int, default=100, help="requests in a row per gateway")
    parser.add_argument(
        "--markers",
        action="store_true",
        help="call os.getppid() before each block (valgrind --tool=callgrind "
        "--dump-before=getppid then dumps one profile per block) and print the blocks' order",
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(GATEWAY_CPU)})  # as the wrk scenarios pin the gateway
    times = asyncio.run(measure(args.requests, args.rounds, args.block, args.markers))
    medians = {name: statistics.median(t) * 1e6 for name, t in times.items()}
    for name, t in times.items():
        rounds = " ".join(f"{x * 1e6:.1f}" for x in t)
        print(f"{name:>6}: median {medians[name]:.1f} us CPU/request  (rounds: {rounds})")
    added = statistics.median(m - n for m, n in zip(times["memory"], times["none"], strict=True))
    added *= 1e6
    share = added / medians["none"] * 100
    print(f" added: {added:+.1f} us per q2 ({share:+.1f}%; median of the rounds' differences)")


if __name__ == "__main__":
    main()
