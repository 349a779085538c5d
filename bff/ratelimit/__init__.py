"""Rate limiting: plans by tier, route and app limits, global limits, in memory or in Redis.

:class:`RateLimiter` holds the policy and a store (:class:`MemoryStore` or :class:`RedisStore`);
:class:`RateLimitLayer` applies it at the edge; GraphQL apps settle their cost-based charge with
:func:`charge`. See docs/rate-limiting.md.
"""

from bff.ratelimit.algorithms import Algorithm, Window, sliding_window, token_bucket
from bff.ratelimit.decision import Decision
from bff.ratelimit.layer import RATE_LIMIT_KEY, Meter, RateLimitLayer, charge, proxy_route_resolver
from bff.ratelimit.memory import MemoryStore
from bff.ratelimit.policy import Policy, RateLimiter, Target, caller_key, windows_of
from bff.ratelimit.redis_store import RedisStore
from bff.ratelimit.store import Batch, CounterSet, Store

__all__ = [
    "RATE_LIMIT_KEY",
    "Algorithm",
    "Batch",
    "CounterSet",
    "Decision",
    "MemoryStore",
    "Meter",
    "Policy",
    "RateLimitLayer",
    "RateLimiter",
    "RedisStore",
    "Store",
    "Target",
    "Window",
    "caller_key",
    "charge",
    "proxy_route_resolver",
    "sliding_window",
    "token_bucket",
    "windows_of",
]
