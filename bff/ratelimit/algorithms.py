"""The two algorithms, as pure functions over a counter's stored fields.

Both stores run exactly this arithmetic: the memory store calls :func:`sliding_window` and runs
:func:`token_bucket` inlined in its loop over the windows (it is on every request's path), the
Redis store runs their transliteration in Lua (:mod:`bff.ratelimit.script`), operation for
operation, on the same IEEE doubles, so one sequence of requests gets the same decisions from
either store (the tests replay sequences through the memory store, this module and Redis). Keep
the three in step when changing any.

**Token bucket**, as GCRA (the generic cell rate algorithm): a window of ``limit`` requests per
``span`` seconds refills one token every ``interval = span / limit`` seconds into a bucket of
``capacity`` tokens (``burst``, else ``limit``). The only state is the *theoretical arrival time*
``tat``: the bucket is full when ``tat <= now`` and a request of ``cost`` tokens moves ``tat``
forward by ``cost * interval``; it is allowed while ``tat - now`` stays within
``capacity * interval``.

**Sliding window**, as the two-counter approximation: counts of the current fixed window and of
the previous one; the previous count is weighted by the part of it still inside the sliding
window, ``estimate = previous * (1 - elapsed / span) + current``. It is exact when requests were
spread evenly over the previous window. Its error bound: in any interval of ``span`` seconds it
admits at most ``limit + previous * elapsed / span`` requests, so never more than ``2 * limit``
(when the previous window's requests all came at its very end); a true sliding log would admit
exactly ``limit``.

A window's result is ``(allowed, remaining, reset_ms, retry_ms, writes)``: ``remaining`` requests
left after this one (before it, when refused), ``reset_ms`` until the window is whole again (token
bucket: full; sliding window: the current fixed window ends), ``retry_ms`` until the request would
be allowed (0 when it is), and the fields to store when every window allows.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from math import ceil, floor
from typing import Literal

__all__ = [
    "EPSILON",
    "Algorithm",
    "Window",
    "WindowResult",
    "sliding_window",
    "token_bucket",
]

Algorithm = Literal["token_bucket", "sliding_window"]

#: Tolerance, in requests, for float round-off at exact boundaries (e.g. 60 / 7 * 7).
EPSILON = 1e-9

Fields = MutableMapping[str, float]
WindowResult = tuple[bool, int, int, int, tuple[tuple[str, float], ...] | None]


@dataclass(frozen=True, slots=True)
class Window:
    """``limit`` requests per ``span`` seconds, in a bucket of ``capacity`` (token bucket).

    ``field`` names the window's state in its counter (``"60"`` for a minute). ``interval``
    (``span / limit``) and ``tolerance`` (``capacity * interval``) are the token bucket's
    constants, computed once with the very operations :func:`token_bucket` and the Lua script
    use, so the same doubles.
    """

    span: float
    limit: int
    capacity: int
    field: str = dataclass_field(init=False, compare=False, repr=False)
    interval: float = dataclass_field(init=False, compare=False, repr=False)
    tolerance: float = dataclass_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", f"{self.span:g}")
        interval = self.span / self.limit
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "tolerance", self.capacity * interval)

    def headline(self, algorithm: Algorithm) -> int:
        """The ``RateLimit-Limit`` of this window: the most requests it allows at once."""
        return self.capacity if algorithm == "token_bucket" else self.limit


def _clamp(value: int, high: int) -> int:
    return 0 if value < 0 else high if value > high else value


def token_bucket(
    fields: Fields, name: str, now: float, span: float, limit: int, cap: int, cost: int
) -> WindowResult:
    """One token-bucket window (GCRA); ``cost <= 0`` gives tokens back and always succeeds."""
    interval = span / limit
    tat = fields.get(name)
    if tat is None or tat < now:
        tat = now
    new_tat = tat + cost * interval
    free = (now - (new_tat - cap * interval)) / interval
    if free >= -EPSILON or cost <= 0:
        remaining = _clamp(floor(free + EPSILON), cap)
        return True, remaining, ceil((new_tat - now) * 1000), 0, ((name, new_tat),)
    free_now = (now - (tat - cap * interval)) / interval
    remaining = _clamp(floor(free_now + EPSILON), cap)
    return False, remaining, ceil((tat - now) * 1000), ceil(-free * interval * 1000), None


def sliding_window(
    fields: Fields, name: str, now: float, span: float, limit: int, cap: int, cost: int
) -> WindowResult:
    """One sliding-window window (two-counter approximation); ``cap`` is unused."""
    fi, fc, fp = name + ":i", name + ":c", name + ":p"
    index = floor(now / span)
    stored = fields.get(fi)
    current = fields.get(fc) or 0
    previous = fields.get(fp) or 0
    if stored is None:
        current = 0
        previous = 0
    elif index == stored + 1:
        previous = current
        current = 0
    elif index != stored:
        current = 0
        previous = 0
    elapsed = (now - index * span) / span
    estimate = previous * (1 - elapsed) + current
    free = limit - estimate - cost
    reset = (index + 1) * span - now
    if free >= -EPSILON or cost <= 0:
        count = current + cost
        if count < 0:
            count = 0
        remaining = _clamp(floor(free + EPSILON), limit)
        return True, remaining, ceil(reset * 1000), 0, ((fi, index), (fc, count), (fp, previous))
    remaining = _clamp(floor(limit - estimate + EPSILON), limit)
    if cost > limit:
        retry = reset + span
    elif current + cost <= limit + EPSILON:
        # The previous window's share has to fade enough within the current window.
        retry = (1 - (limit - current - cost) / previous - elapsed) * span
    else:
        # Only in the next window, where today's count becomes the fading one.
        share = 0.0
        if current > 0:
            share = 1 - (limit - cost) / current
            if share < 0:
                share = 0.0
        retry = reset + share * span
    return False, remaining, ceil(reset * 1000), ceil(retry * 1000), None
