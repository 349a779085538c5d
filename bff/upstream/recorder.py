"""Observing the upstream calls a piece of work makes.

Used by the test helper :func:`upstream_calls` (so a backend team can assert how many requests a
query costs) and by the development-mode N+1 guard. Recording costs one truthiness check per call
when nobody is listening.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["RecordedCall", "UpstreamCalls", "record", "upstream_calls"]


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One upstream request as seen by the chain: upstream name, method, endpoint template, path."""

    upstream: str
    method: str
    template: str
    path: str


@dataclass
class UpstreamCalls:
    """The calls made while an :func:`upstream_calls` block was open."""

    calls: list[RecordedCall] = field(default_factory=list)

    def count(self, upstream: str | None = None, template: str | None = None) -> int:
        """Number of calls, optionally only to ``upstream`` and/or endpoint ``template``."""
        return sum(
            1
            for c in self.calls
            if (upstream is None or c.upstream == upstream)
            and (template is None or c.template == template)
        )

    def by_upstream(self) -> dict[str, int]:
        """Calls per upstream name."""
        return dict(Counter(c.upstream for c in self.calls))

    def __len__(self) -> int:
        return len(self.calls)


_listeners: list[UpstreamCalls] = []


def record(call: RecordedCall) -> None:
    """Hand ``call`` to every open :func:`upstream_calls` block."""
    for listener in _listeners:
        listener.calls.append(call)


def is_recording() -> bool:
    return bool(_listeners)


@contextmanager
def upstream_calls() -> Iterator[UpstreamCalls]:
    """Collect every upstream call made in this process while the block runs.

    >>> with upstream_calls() as calls:
    ...     run_query("{ users { items { orders { id } } } }")
    >>> assert calls.count("orders") == 1
    """
    calls = UpstreamCalls()
    _listeners.append(calls)
    try:
        yield calls
    finally:
        _listeners.remove(calls)
