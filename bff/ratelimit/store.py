"""What a store decides on, and the interface both stores implement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bff.ratelimit.algorithms import Algorithm, Window
from bff.ratelimit.decision import Decision

__all__ = ["Batch", "CounterSet", "Store"]


@dataclass(frozen=True, slots=True)
class CounterSet:
    """Counters decided in one store call; each counter is a key holding some windows.

    Built once per policy at start-up. ``argv`` describes the windows to the Lua script (per
    counter: the number of windows, then ``span limit capacity`` for each), so a request only
    supplies the keys.
    """

    counters: tuple[tuple[Window, ...], ...]
    argv: tuple[bytes, ...] = field(init=False)
    #: Per counter, per window: ``(field, interval, tolerance, capacity)``, what the memory
    #: store's token bucket reads (one tuple to unpack rather than four attributes per window).
    specs: tuple[tuple[tuple[str, float, float, int], ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        argv: list[str] = []
        for windows in self.counters:
            argv.append(str(len(windows)))
            for w in windows:
                argv.extend((w.field, str(w.limit), str(w.capacity)))
        # Encoded once here rather than by the Redis client on every call.
        object.__setattr__(self, "argv", tuple(a.encode() for a in argv))
        specs = tuple(
            tuple((w.field, w.interval, w.tolerance, w.capacity) for w in windows)
            for windows in self.counters
        )
        object.__setattr__(self, "specs", specs)


Batch = tuple[Sequence[str], CounterSet]
"""The keys of one request's counters (all under one hash tag) with what they hold."""


class Store(Protocol):
    """Where counters live: :class:`~bff.ratelimit.memory.MemoryStore` or the Redis store."""

    algorithm: Algorithm

    async def decide(self, batches: Sequence[Batch], cost: int, *, charge: bool = True) -> Decision:
        """Charge ``cost`` to every counter of ``batches`` if every window allows it (all or
        nothing); ``charge=False`` only says whether it would be allowed."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        ...
