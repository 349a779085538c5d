"""Observing the upstream calls a piece of work makes.

Used by the test helper :func:`upstream_calls` (so a backend team can assert how many requests a
query costs) and by the development-mode N+1 guard. Recording costs one truthiness check per call
when nobody is listening.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = [
    "RecordedCall",
    "RequestTally",
    "UpstreamCalls",
    "call_origin",
    "one_batch",
    "record",
    "tally_requests",
    "upstream_calls",
]


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


@dataclass
class RequestTally:
    """Upstream calls of one request by ``(upstream, endpoint template, origin)``.

    ``origin`` names what made the calls (a GraphQL field such as ``Order.user``), when the
    caller set one with :func:`call_origin`.
    """

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    batches: set[object] = field(default_factory=set)

    def over(self, threshold: int) -> list[tuple[str, str, str, int]]:
        """``(upstream, template, origin, count)`` for each endpoint called more than
        ``threshold`` times."""
        return [(u, t, o, n) for (u, t, o), n in self.counts.items() if n > threshold]


_listeners: list[UpstreamCalls] = []
_tally: ContextVar[RequestTally | None] = ContextVar("bff_request_tally", default=None)
_origin: ContextVar[str] = ContextVar("bff_call_origin", default="")
_batch: ContextVar[object | None] = ContextVar("bff_batch", default=None)


def record(call: RecordedCall) -> None:
    """Hand ``call`` to every open :func:`upstream_calls` block and the request's tally."""
    for listener in _listeners:
        listener.calls.append(call)
    tally = _tally.get()
    if tally is not None:
        batch = _batch.get()
        if batch is not None:
            # The chunks of one batch are one logical request.
            if batch in tally.batches:
                return
            tally.batches.add(batch)
        tally.counts[(call.upstream, call.template, _origin.get())] += 1


def is_recording() -> bool:
    return bool(_listeners) or _tally.get() is not None


@contextmanager
def tally_requests() -> Iterator[RequestTally]:
    """Count the upstream calls made by the current task and the tasks it starts."""
    tally = RequestTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


@contextmanager
def one_batch() -> Iterator[None]:
    """Count the calls made in the block (the chunks of one batch) as one request."""
    token = _batch.set(object())
    try:
        yield
    finally:
        _batch.reset(token)


def call_origin(label: str) -> object:
    """Label the upstream calls made from here on in this context (undo with
    :func:`reset_origin`)."""
    return _origin.set(label)


def reset_origin(token: object) -> None:
    _origin.reset(token)  # type: ignore[arg-type]


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
