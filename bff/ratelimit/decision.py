"""A rate-limit decision and the response headers that describe it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "QuotaHeaders", "Tightest"]


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

    def headers(self) -> QuotaHeaders:
        """``RateLimit-*`` and ``X-RateLimit-*`` response headers (raw ASGI pairs).

        Equal values give the same tuple, built once (a caller well within its quota sees the
        same few values request after request): not to be modified.
        """
        remaining = self.remaining if self.remaining > 0 else 0
        reset = -(-self.reset_ms // 1000)
        key = (self.limit, remaining, reset)
        found = _HEADERS.get(key)
        if found is None:
            if len(_HEADERS) >= _MAX_HEADERS:
                _HEADERS.clear()
            limit_b, remaining_b, reset_b = b"%d" % self.limit, b"%d" % remaining, b"%d" % reset
            found = _HEADERS[key] = (
                (b"ratelimit-limit", limit_b),
                (b"ratelimit-remaining", remaining_b),
                (b"ratelimit-reset", reset_b),
                (b"x-ratelimit-limit", limit_b),
                (b"x-ratelimit-remaining", remaining_b),
                (b"x-ratelimit-reset", reset_b),
            )
        return found


QuotaHeaders = tuple[tuple[bytes, bytes], ...]
"""The six quota headers of a decision, as raw ASGI pairs."""

_HEADERS: dict[tuple[int, int, int], QuotaHeaders] = {}  # by (limit, remaining, reset)
_MAX_HEADERS = 4096


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
