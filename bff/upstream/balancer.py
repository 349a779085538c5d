"""Choosing a target for each try: round robin, least requests, client-IP hash, weighted.

Every strategy skips targets that are unhealthy, ejected or drained (weight 0), and avoids the
target the previous try of the same call failed on when another one is available, so a retry goes
to the next healthy target. ``pick`` returns ``None`` when no target is available.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal, Protocol

from bff.upstream.target import Target

__all__ = [
    "Balance",
    "Balancer",
    "IpHash",
    "LeastRequests",
    "RoundRobin",
    "Weighted",
    "make_balancer",
]

Balance = Literal["round_robin", "least_requests", "ip_hash", "weighted"]


class Balancer(Protocol):
    """Chooses among an upstream's targets."""

    def pick(self, client_ip: str | None, avoid: Target | None) -> Target | None: ...


class RoundRobin:
    """Each target in turn."""

    __slots__ = ("_next", "targets")

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = [t for t in targets if t.weight > 0]
        self._next = 0

    def pick(self, client_ip: str | None, avoid: Target | None) -> Target | None:
        targets = self.targets
        n = len(targets)
        if n == 1:
            only = targets[0]
            return only if only.available() else None
        start = self._next
        self._next = (start + 1) % n
        return _scan(targets, start, avoid)


class LeastRequests:
    """The available target with the fewest requests in flight (ties: in turn)."""

    __slots__ = ("_next", "targets")

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = [t for t in targets if t.weight > 0]
        self._next = 0

    def pick(self, client_ip: str | None, avoid: Target | None) -> Target | None:
        targets = self.targets
        n = len(targets)
        start = self._next
        self._next = (start + 1) % n
        best: Target | None = None
        for i in range(n):
            t = targets[(start + i) % n]
            if t is avoid or not t.available():
                continue
            if best is None or t.active < best.active:
                best = t
        if best is None and avoid is not None and avoid.available():
            return avoid
        return best


class IpHash:
    """The same client IP goes to the same target while it is available.

    CRC-32 rather than ``hash()``: the mapping must agree between gateway processes. Calls
    without a client IP (GraphQL resolvers) are spread in turn.
    """

    __slots__ = ("_fallback", "targets")

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = [t for t in targets if t.weight > 0]
        self._fallback = RoundRobin(self.targets)

    def pick(self, client_ip: str | None, avoid: Target | None) -> Target | None:
        if client_ip is None:
            return self._fallback.pick(None, avoid)
        start = zlib.crc32(client_ip.encode()) % len(self.targets)
        return _scan(self.targets, start, avoid)


class Weighted:
    """Smooth weighted round robin (nginx's): shares follow the weights exactly, interleaved."""

    __slots__ = ("targets",)

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = [t for t in targets if t.weight > 0]

    def pick(self, client_ip: str | None, avoid: Target | None) -> Target | None:
        chosen = self._pick(avoid)
        if chosen is None and avoid is not None:
            chosen = self._pick(None)
        return chosen

    def _pick(self, avoid: Target | None) -> Target | None:
        best: Target | None = None
        total = 0
        for t in self.targets:
            if t is avoid or not t.available():
                continue
            t.current_weight += t.weight
            total += t.weight
            if best is None or t.current_weight > best.current_weight:
                best = t
        if best is not None:
            best.current_weight -= total
        return best


def _scan(targets: list[Target], start: int, avoid: Target | None) -> Target | None:
    n = len(targets)
    fallback: Target | None = None
    for i in range(n):
        t = targets[(start + i) % n]
        if t.available():
            if t is avoid:
                fallback = t
                continue
            return t
    return fallback


_STRATEGIES: dict[str, type[RoundRobin | LeastRequests | IpHash | Weighted]] = {
    "round_robin": RoundRobin,
    "least_requests": LeastRequests,
    "ip_hash": IpHash,
    "weighted": Weighted,
}


def make_balancer(kind: str, targets: Sequence[Target]) -> Balancer:
    """The balancer called ``kind`` over ``targets``."""
    try:
        cls = _STRATEGIES[kind]
    except KeyError:
        raise ValueError(f"unknown balance {kind!r} (use {', '.join(_STRATEGIES)})") from None
    return cls(targets)
