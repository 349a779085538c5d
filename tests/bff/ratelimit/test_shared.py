"""Two gateways, one Redis: one combined limit, whichever gateway a request reaches."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import aiohttp
import pytest

from bff.gateway import build_gateway
from tests.conftest import SampleServices
from tests.support.gateway import demo_config
from tests.support.servers import ThreadedServer

LIMIT = 500
REQUESTS = 1000


@pytest.mark.parametrize("algorithm", ["token_bucket", "sliding_window"])
async def test_two_gateways_enforce_one_combined_limit(
    services: SampleServices, redis_url: str, algorithm: str
) -> None:
    config = demo_config(
        services.env,
        {
            "state": {
                "backend": "redis",
                "redis_url": redis_url,
                "key_prefix": f"bfftest:{uuid.uuid4().hex[:12]}:",
            },
            # A day's quota: the few seconds of the test refill (almost) nothing.
            "rate_limits": {
                "plans": {"anonymous": {"per_minute": None, "per_day": LIMIT}},
                "algorithm": algorithm,
            },
        },
    )
    body = {"query": "{ __typename }"}
    outcomes: Counter[tuple[int, int]] = Counter()
    with ThreadedServer(build_gateway(config)) as one, ThreadedServer(build_gateway(config)) as two:
        urls = [one.url + "/graphql/web", two.url + "/graphql/web"]
        # aiohttp rather than httpx: the client must not be the slowest part of the test.
        async with aiohttp.ClientSession() as session:

            async def worker(n: int) -> None:
                for i in range(n, REQUESTS, 32):
                    async with session.post(urls[i % 2], json=body) as r:
                        await r.read()
                        outcomes[(i % 2, r.status)] += 1

            await asyncio.gather(*(worker(n) for n in range(32)))
    allowed = outcomes[(0, 200)] + outcomes[(1, 200)]
    refused = outcomes[(0, 429)] + outcomes[(1, 429)]
    assert allowed + refused == REQUESTS, outcomes
    assert abs(allowed - LIMIT) <= LIMIT // 100, outcomes  # within 1%
    # Both gateways served and both refused: the limit was one, not one each.
    assert all(outcomes[(g, s)] > 0 for g in (0, 1) for s in (200, 429)), outcomes
