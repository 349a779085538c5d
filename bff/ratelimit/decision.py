"""A rate-limit decision and the response headers that describe it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "Tightest"]


@dataclass(slots=True)
class Decision:
    """The outcome of one request against every window that applies to it.

    ``limit``, ``remaining`` and ``reset_ms`` describe the window with the least remaining (the
    one that refuses first); ``retry_ms`` is how long until the refused request would fit in
    every window (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    retry_ms: int = 0

    @property
    def reset(self) -> int:
        """Whole seconds until the tightest window is whole again (``RateLimit-Reset``)."""
        return -(-self.reset_ms // 1000)

    @property
    def retry_after(self) -> float:
        """Seconds until the refused request would be allowed."""
        return self.retry_ms / 1000

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-*`` and ``X-RateLimit-*`` response headers (raw ASGI pairs)."""
        limit = b"%d" % self.limit
        remaining = b"%d" % (self.remaining if self.remaining > 0 else 0)
        reset = b"%d" % -(-self.reset_ms // 1000)
        return [
            (b"ratelimit-limit", limit),
            (b"ratelimit-remaining", remaining),
            (b"ratelimit-reset", reset),
            (b"x-ratelimit-limit", limit),
            (b"x-ratelimit-remaining", remaining),
            (b"x-ratelimit-reset", reset),
        ]


class Tightest:
    """Folds window results into one :class:`Decision` (the same rule as the Lua script).

    The reported window is the one with the least remaining; among equals, the one that takes
    longest to reset; among those, the first.
    """

    __slots__ = ("allowed", "limit", "remaining", "reset_ms", "retry_ms")

    def __init__(self) -> None:
        self.allowed = True
        self.limit = 0
        self.remaining = -1
        self.reset_ms = 0
        self.retry_ms = 0

    def add(self, allowed: bool, limit: int, remaining: int, reset_ms: int, retry_ms: int) -> None:
        if not allowed:
            self.allowed = False
            if retry_ms > self.retry_ms:
                self.retry_ms = retry_ms
        if (
            self.remaining < 0
            or remaining < self.remaining
            or (remaining == self.remaining and reset_ms > self.reset_ms)
        ):
            self.limit, self.remaining, self.reset_ms = limit, remaining, reset_ms

    def decision(self) -> Decision:
        return Decision(self.allowed, self.limit, self.remaining, self.reset_ms, self.retry_ms)
