"""Which limits apply to a request, and under which keys.

A request is limited by up to three kinds of counters, all of which must allow it:

- the caller's **plan**, chosen by the principal's tier (``rate_limits.plans``; a tier without a
  plan gets ``anonymous``), keyed by the caller: the user's subject, the API key's id, or for
  anonymous callers the client address (IPv6 by /64, since one host holds a whole /64);
- the **target's limit** per caller: ``routes[].rate_limit`` or ``graphql.apps.<app>.rate_limit``;
- **global limits** shared by every caller: ``rate_limits.global_limit`` (the whole gateway) and
  the target's ``global_limit``.

The windows of each combination are compiled once into a :class:`Policy`; per request only the
keys are built. Redis keys are ``<key_prefix>rl:{<caller>}:<scope>`` for the caller's counters
(one hash tag, so one cluster slot and one script per decision) and
``<key_prefix>rl:{g:<scope>}`` for global ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bff.ratelimit.algorithms import Algorithm, Window
from bff.ratelimit.decision import Decision
from bff.ratelimit.memory import MemoryStore
from bff.ratelimit.redis_store import RedisStore
from bff.ratelimit.store import Batch, CounterSet, Store

if TYPE_CHECKING:
    from bff.auth.principal import Principal
    from bff.config import GatewayConfig, PlanConfig

__all__ = ["Policy", "RateLimiter", "Target", "caller_key", "windows_of"]

ANONYMOUS_PLAN = "anonymous"


@dataclass(frozen=True, slots=True)
class Target:
    """What a request is for, as far as limits go: ``kind`` (``app`` or ``route``), its name,
    and its limits (``graphql.apps.<name>`` or ``routes[]`` configuration: a route's
    :class:`~bff.config.RouteConfig` serves as a target as it is)."""

    kind: str
    id: str
    rate_limit: PlanConfig | None = None
    global_limit: PlanConfig | None = None


def windows_of(plan: PlanConfig, algorithm: Algorithm) -> tuple[Window, ...]:
    """A plan's windows, shortest first; ``burst`` sizes every token bucket of the plan."""
    out = []
    for span, limit in plan.windows():
        capacity = plan.burst if (plan.burst and algorithm == "token_bucket") else limit
        out.append(Window(span, limit, capacity))
    return tuple(out)


def caller_key(principal: Principal | None, client_ip: str | None) -> str:
    """Whom the caller's counters belong to: ``u:<subject>``, ``k:<key id>`` or ``ip:<addr>``."""
    if principal is not None and principal.kind != "anonymous" and principal.subject:
        key = ("u:" if principal.kind == "user" else "k:") + principal.subject
    else:
        address = client_ip or (principal.client_ip if principal is not None else None) or "-"
        if ":" in address:
            address = _ipv6_block(address)
        key = "ip:" + address
    if "{" in key or "}" in key or len(key) > 120:
        # Braces would move the hash tag; long subjects would bloat every key.
        key = "h:" + hashlib.sha1(key.encode()).hexdigest()
    return key


def _ipv6_block(address: str) -> str:
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


@dataclass(frozen=True, slots=True)
class Policy:
    """The counters of one (plan, target) combination: the caller's and the global ones."""

    own_suffixes: tuple[str, ...]
    own: CounterSet | None
    shared: tuple[Batch, ...]

    def batches(self, prefix: str, caller: str) -> list[Batch]:
        """The store batches of this policy for ``caller``."""
        own = self.own
        if own is None:
            return list(self.shared)
        base = prefix + "{" + caller + "}:"
        suffixes = self.own_suffixes
        keys = [base + suffixes[0]] if len(suffixes) == 1 else [base + s for s in suffixes]
        if not self.shared:
            return [(keys, own)]
        return [(keys, own), *self.shared]


_NO_POLICY = Policy((), None, ())


class RateLimiter:
    """The gateway's rate limits: plans, target limits, global limits, over one store.

    Built once per process (:meth:`from_config`); :meth:`check` is the only per-request call.
    """

    def __init__(
        self,
        store: Store,
        *,
        plans: dict[str, PlanConfig],
        global_limit: PlanConfig | None = None,
        key_prefix: str = "bff:",
    ) -> None:
        self.store = store
        self.algorithm: Algorithm = store.algorithm
        self.prefix = key_prefix + "rl:"
        self._plans = {name: windows_of(p, self.algorithm) for name, p in plans.items()}
        self._global = windows_of(global_limit, self.algorithm) if global_limit else None
        self._policies: dict[tuple[str | None, str, str], tuple[object, object, Policy]] = {}
        #: Hears of each refused request, with its plan (the gateway's metrics set it).
        self.on_refused: Callable[[str | None], object] | None = None
        #: The memory store's ``decide_now``, called without a coroutine (it never waits);
        #: None for a store that has to be awaited.
        self.local = store.decide_now if isinstance(store, MemoryStore) else None
        #: The plan of anonymous callers (:meth:`plan_for` of an anonymous principal).
        self.anonymous_plan = self.plan_for(None)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> RateLimiter | None:
        """The limiter for ``config``, or None when nothing at all is limited."""
        rl = config.rate_limits
        limited = (
            bool(rl.plans)
            or rl.global_limit is not None
            or any(a.rate_limit or a.global_limit for a in config.graphql.apps.values())
            or any(r.rate_limit or r.global_limit for r in config.routes)
        )
        if not limited:
            return None
        state = config.state
        local = MemoryStore(rl.algorithm, max_keys=state.ratelimit_max_keys)
        store: Store = local
        if state.backend == "redis" and state.redis_url:
            store = RedisStore.from_url(
                state.redis_url,
                connect_timeout=min(state.redis_connect_timeout, state.redis_socket_timeout),
                socket_timeout=state.redis_socket_timeout,
                algorithm=rl.algorithm,
                fallback=local,
                fail_open=rl.fail_open,
            )
        return cls(store, plans=rl.plans, global_limit=rl.global_limit, key_prefix=state.key_prefix)

    def plan_for(self, principal: Principal | None) -> str | None:
        """The plan limiting ``principal``: its tier's, else ``anonymous`` (None: no plans)."""
        if not self._plans:
            return None
        if principal is not None and principal.kind != "anonymous":
            tier = principal.tier
            if tier in self._plans:
                return tier
        return ANONYMOUS_PLAN if ANONYMOUS_PLAN in self._plans else None

    def policy(self, plan: str | None, kind: str, target: Any) -> Policy:
        """The compiled counters for ``plan`` on ``target`` (an app :class:`Target` or a
        route's configuration; None: neither), cached."""
        if target is None:
            name, own_limit, shared_limit = "", None, None
        else:
            name, own_limit, shared_limit = target.id, target.rate_limit, target.global_limit
        key = (plan, kind, name)
        cached = self._policies.get(key)
        # A route changed through the admin API keeps its id but gets new limit objects.
        if cached is not None and cached[0] is own_limit and cached[1] is shared_limit:
            return cached[2]
        policy = self._compile(plan, kind, name, own_limit, shared_limit)
        if len(self._policies) > 10_000:
            self._policies.clear()
        self._policies[key] = (own_limit, shared_limit, policy)
        return policy

    def _compile(
        self,
        plan: str | None,
        kind: str,
        name: str,
        own_limit: PlanConfig | None,
        shared_limit: PlanConfig | None,
    ) -> Policy:
        suffixes: list[str] = []
        counters: list[tuple[Window, ...]] = []
        if plan is not None:
            suffixes.append("p:" + plan)
            counters.append(self._plans[plan])
        tag = kind[:1] + ":" + name if name else kind[:1]
        if own_limit is not None:
            suffixes.append(tag)
            counters.append(windows_of(own_limit, self.algorithm))
        shared: list[Batch] = []
        if self._global is not None:
            shared.append(([self.prefix + "{g:all}"], CounterSet((self._global,))))
        if shared_limit is not None:
            windows = windows_of(shared_limit, self.algorithm)
            shared.append(([self.prefix + "{g:" + tag + "}"], CounterSet((windows,))))
        if not counters and not shared:
            return _NO_POLICY
        own = CounterSet(tuple(counters)) if counters else None
        return Policy(tuple(suffixes), own, tuple(shared))

    def batches(self, caller: str, plan: str | None, kind: str, target: Any) -> list[Batch] | None:
        """The store batches charging ``caller`` under ``plan`` on ``target`` (of ``kind``
        ``app`` or ``route``, as for :meth:`policy`); None when nothing limits the request."""
        policy = self.policy(plan, kind, target)
        if policy is _NO_POLICY:
            return None
        return policy.batches(self.prefix, caller)

    async def check(
        self,
        caller: str,
        plan: str | None,
        target: Target | None = None,
        cost: int = 1,
        *,
        peek: bool = False,
    ) -> Decision | None:
        """Charge ``cost`` requests to ``caller`` on an app ``target`` (None: no target);
        None when nothing limits the request.

        ``peek``: only describe the quota as it stands (``allowed`` then says whether one more
        request would be). Raises :class:`~bff.errors.ServiceUnavailable` when the shared store
        is unreachable and ``fail_open`` is off.
        """
        batches = self.batches(caller, plan, "app", target)
        if batches is None:
            return None
        if peek:
            return await self.peek(batches)
        if self.local is not None:  # the memory store never waits: no coroutine for it
            return self.local(batches, cost)
        return await self.store.decide(batches, cost)

    async def check_route(
        self, caller: str, plan: str | None, route: Any, cost: int = 1
    ) -> Decision | None:
        """:meth:`check` for a passthrough route (its :class:`~bff.config.RouteConfig`)."""
        batches = self.batches(caller, plan, "route", route)
        if batches is None:
            return None
        if self.local is not None:
            return self.local(batches, cost)
        return await self.store.decide(batches, cost)

    async def peek(self, batches: list[Batch]) -> Decision:
        """The quota of ``batches`` as it stands, charging nothing (``allowed``: whether one
        more request would be)."""
        decision = await self.store.decide(batches, 0, charge=False)  # the quota as it stands
        if decision.remaining < 1:
            # Out of quota: when would one more request fit? (Only throttled callers ask.)
            one = await self.store.decide(batches, 1, charge=False)
            decision.allowed, decision.retry_ms = one.allowed, one.retry_ms
        return decision

    def refused(self, plan: str | None) -> None:
        """Report one request refused under ``plan`` to :attr:`on_refused`."""
        if self.on_refused is not None:
            self.on_refused(plan)

    async def aclose(self) -> None:
        await self.store.aclose()

    def stats(self) -> dict[str, object]:
        """Counters for the metrics endpoint (``local_decisions``: made without Redis)."""
        store = self.store
        out: dict[str, object] = {"algorithm": self.algorithm, "store": type(store).__name__}
        if isinstance(store, RedisStore):
            out.update(
                redis_available=store.available,
                local_decisions=store.local_decisions,
                outages=store.outages,
            )
        return out
