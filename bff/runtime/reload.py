"""Hot reload: a new configuration applied to a running gateway without a restart.

What swaps: ``upstreams`` (changed or added ones are built anew, unchanged ones keep their
connections, breaker and health state), ``routes`` (the file's; admin-managed routes are
re-validated against them) and ``rate_limits`` (plans, global limit, trusted proxies; the
counters are kept). Everything else (``listen``, ``state``, ``store``, ``admin``, ``auth``,
``graphql`` with its schema modules, ``limits``, ``observability``, ...) is fixed for the
process's life: a change there is logged as needing a restart and otherwise ignored, as are
``rate_limits.algorithm`` and ``rate_limits.fail_open`` (they shape the counters' store).

The new objects are all built first; the swap itself is a run of assignments with no ``await``
between them, so a request starts on the old configuration or on the new one, never on a mix,
and a request in flight finishes on the objects it started with. Upstreams that left the pool
are closed once any request could still be using them is over (the longest request budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bff.config import GatewayConfig, RouteConfig, UpstreamConfig, check_routes
from bff.errors import ConfigError
from bff.graphql import ClientCache
from bff.proxy import Proxy
from bff.ratelimit import RateLimiter

if TYPE_CHECKING:
    from bff.gateway import Gateway
    from bff.upstream import Upstream

__all__ = ["ReloadResult", "Reloader", "ensure_rate_limiter", "plan_reload"]

log = logging.getLogger("bff.reload")

SWAPPABLE = ("upstreams", "routes", "rate_limits")
"""Sections a reload applies; every other section needs a restart."""
_FIXED_RATE_LIMITS = ("algorithm", "fail_open")
_MAX_RETIRE_DELAY = 300.0

UpstreamFactory = Callable[[Mapping[str, UpstreamConfig]], "Mapping[str, Upstream]"]


@dataclass
class ReloadResult:
    """What a reload did: ``applied`` false means the old configuration was kept."""

    applied: bool
    changes: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def plan_reload(
    current: GatewayConfig, new: GatewayConfig
) -> tuple[GatewayConfig, list[str], list[str]]:
    """``(effective, changes, restart_needed)``: ``current`` with the swappable parts of ``new``,
    a line per applied change and the keys whose change needs a restart."""
    restart = [
        name
        for name in type(current).model_fields
        if name not in SWAPPABLE and getattr(current, name) != getattr(new, name)
    ]
    rate_limits = new.rate_limits
    fixed = {k: getattr(current.rate_limits, k) for k in _FIXED_RATE_LIMITS}
    for key, value in fixed.items():
        if getattr(rate_limits, key) != value:
            restart.append(f"rate_limits.{key}")
    rate_limits = rate_limits.model_copy(update=fixed)
    effective = current.model_copy(
        update={"upstreams": new.upstreams, "routes": new.routes, "rate_limits": rate_limits}
    )
    changes: list[str] = []
    old_up, new_up = current.upstreams, new.upstreams
    added = [n for n in new_up if n not in old_up]
    removed = [n for n in old_up if n not in new_up]
    changed = [n for n in new_up if n in old_up and new_up[n] != old_up[n]]
    for label, names in (("added", added), ("changed", changed), ("removed", removed)):
        if names:
            changes.append(f"upstreams {label}: {', '.join(names)}")
    changes.extend(_route_changes(current.routes, new.routes))
    if rate_limits != current.rate_limits:
        changes.append("rate_limits changed")
    return effective, changes, restart


def _route_changes(old: Sequence[RouteConfig], new: Sequence[RouteConfig]) -> list[str]:
    before = {r.id: r for r in old}
    after = {r.id: r for r in new}
    out = []
    added = [i for i in after if i not in before]
    removed = [i for i in before if i not in after]
    changed = [i for i in after if i in before and after[i] != before[i]]
    for label, ids in (("added", added), ("changed", changed), ("removed", removed)):
        if ids:
            out.append(f"routes {label}: {', '.join(ids)}")
    if not out and [r.id for r in old] != [r.id for r in new]:
        out.append("routes reordered")
    return out


def _has_limits(routes: Iterable[RouteConfig]) -> bool:
    return any(r.rate_limit is not None or r.global_limit is not None for r in routes)


def ensure_rate_limiter(gateway: Gateway, routes: Sequence[RouteConfig]) -> None:
    """Give ``gateway`` a rate limiter when ``routes`` (admin-managed ones included) have limits
    and it runs without one (a configuration that limited nothing at start-up)."""
    if gateway.rate_limiter is not None or not _has_limits(routes):
        return
    limiter = RateLimiter.from_config(gateway.config.model_copy(update={"routes": list(routes)}))
    if limiter is not None:
        gateway.reconfigure(gateway.config, rate_limiter=limiter)


class Reloader:
    """Applies new configurations to one gateway (see the module docstring).

    ``build_upstreams`` builds upstreams as ``build_gateway`` did (same transport and
    telemetry). :meth:`aclose` closes upstreams still waiting to be retired.
    """

    def __init__(self, gateway: Gateway, build_upstreams: UpstreamFactory) -> None:
        self.gateway = gateway
        self.build_upstreams = build_upstreams
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: list[Upstream] = []
        #: How many reloads were applied (tests and logs).
        self.generation = 0

    async def apply(self, new: GatewayConfig) -> ReloadResult:
        """Apply ``new`` (already validated as a file); never raises for a bad configuration:
        the result says what happened, and the log too."""
        async with self._lock:
            try:
                result = self._apply(new)
            except ConfigError as exc:
                result = ReloadResult(False, problems=list(exc.problems))
            except Exception as exc:
                log.exception("reload failed; the previous configuration stays")
                result = ReloadResult(False, problems=[("", f"{type(exc).__name__}: {exc}")])
        self._report(result)
        return result

    def _apply(self, new: GatewayConfig) -> ReloadResult:
        gw = self.gateway
        current = gw.config
        effective, changes, restart = plan_reload(current, new)
        # The new routes against the sections kept from the running configuration.
        check_routes(effective, effective.routes, source="reload")
        if not changes:
            return ReloadResult(True, [], restart)
        pool = gw.upstreams
        kept: dict[str, Upstream] = {}
        fresh: dict[str, UpstreamConfig] = {}
        for name, cfg in effective.upstreams.items():
            if current.upstreams.get(name) == cfg and name in pool:
                kept[name] = pool[name]
            else:
                fresh[name] = cfg
        built = dict(self.build_upstreams(fresh)) if fresh else {}
        upstreams = {name: kept.get(name) or built[name] for name in effective.upstreams}
        limiter = self._rate_limiter(current, effective)

        # The swap: assignments only, no await, so no request sees half of it.
        retired = _replace(pool, upstreams)
        for upstream in built.values():
            upstream.start()
        for app in gw.graphql_apps.values():
            app.clients = ClientCache(pool)
        gw.reconfigure(effective, rate_limiter=limiter)
        if gw.route_manager is not None:
            gw.route_manager.reconfigure(effective, pool)
        elif isinstance(gw.proxy, Proxy):
            gw.proxy.replace(*Proxy.compile(effective, pool, effective.routes))
        self.generation += 1
        self._retire(retired, _longest_budget(effective))
        return ReloadResult(True, changes, restart)

    def _rate_limiter(self, current: GatewayConfig, effective: GatewayConfig) -> RateLimiter | None:
        limiter = self.gateway.rate_limiter
        rl = effective.rate_limits
        if limiter is None:
            routes = self.gateway.route_manager.routes if self.gateway.route_manager else []
            extra = [r for r in routes if r.id not in {x.id for x in effective.routes}]
            return RateLimiter.from_config(
                effective.model_copy(update={"routes": [*effective.routes, *extra]})
            )
        if rl == current.rate_limits:
            return limiter
        # Same store, so the counters (and a Redis connection) carry over.
        return RateLimiter(
            limiter.store,
            plans=rl.plans,
            global_limit=rl.global_limit,
            key_prefix=effective.state.key_prefix,
        )

    def _retire(self, upstreams: list[Upstream], delay: float) -> None:
        if not upstreams:
            return
        self._retired.extend(upstreams)
        task = asyncio.get_running_loop().create_task(self._close_later(upstreams, delay))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_later(self, upstreams: list[Upstream], delay: float) -> None:
        await asyncio.sleep(delay)
        await self._close(upstreams)

    async def _close(self, upstreams: list[Upstream]) -> None:
        for upstream in upstreams:
            if upstream in self._retired:
                self._retired.remove(upstream)
                try:
                    await upstream.aclose()
                except Exception:
                    log.exception("closing retired upstream %s failed", upstream.name)

    async def aclose(self) -> None:
        """Close every retired upstream now (at shutdown)."""
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close(list(self._retired))

    @staticmethod
    def _report(result: ReloadResult) -> None:
        if not result.applied:
            log.error(
                "configuration reload rejected; the previous configuration stays:\n  %s",
                "\n  ".join(f"{p}: {m}" if p else m for p, m in result.problems),
            )
            return
        for key in result.restart_needed:
            log.warning("configuration reload: %s changed; restart the gateway to apply it", key)
        if result.changes:
            log.info("configuration reloaded: %s", "; ".join(result.changes))
        else:
            log.info("configuration reloaded: nothing to change")


def _replace(pool: Any, upstreams: Mapping[str, Upstream]) -> list[Upstream]:
    replace = getattr(pool, "replace", None)
    if replace is None:  # a plain mapping (tests): nothing shared to update in place
        raise TypeError("the gateway's upstream pool cannot be replaced")
    retired: list[Upstream] = replace(upstreams)
    return retired


def _longest_budget(config: GatewayConfig) -> float:
    """How long a request started before the swap may still be running."""
    budgets = [config.listen.drain_timeout]
    budgets.extend(r.timeout for r in config.routes)
    budgets.extend(a.timeout for a in config.graphql.apps.values() if a.timeout)
    for upstream in config.upstreams.values():
        budgets.append(upstream.timeout.read * (1 + upstream.retries.attempts))
    return min(max(budgets) + 1.0, _MAX_RETIRE_DELAY)
