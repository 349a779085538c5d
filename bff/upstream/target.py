"""One instance of an upstream service and the health state the balancer reads."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx

__all__ = ["Target"]


class Target:
    """One base URL of an upstream (``http://10.0.0.5:8080``), with its weight and health.

    ``healthy`` is the verdict of active health checks (always true without them);
    ``ejected_until`` is set by passive health (outlier ejection) and is 0 when not ejected;
    ``active`` counts requests in flight, for ``least_requests``.
    """

    __slots__ = (
        "active",
        "base",
        "base_path",
        "current_weight",
        "ejected_until",
        "ejections",
        "failures",
        "healthy",
        "origin",
        "url",
        "weight",
    )

    def __init__(self, url: str, weight: int = 1) -> None:
        self.base = url.rstrip("/")
        parts = urlsplit(self.base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path
        #: The origin as an ``httpx.URL``, parsed once (the request target is set per call).
        self.url = httpx.URL(self.origin)
        self.weight = weight
        self.active = 0
        self.healthy = True
        self.failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        self.current_weight = 0

    def available(self) -> bool:
        """Healthy and not ejected (an ejection that has run out is lifted here)."""
        if not self.healthy:
            return False
        until = self.ejected_until
        if until:
            if until > time.monotonic():
                return False
            self.ejected_until = 0.0
        return True

    def describe(self) -> dict[str, object]:
        """The target's state, for the admin API and logs."""
        ejected = self.ejected_until - time.monotonic() if self.ejected_until else 0.0
        return {
            "url": self.base,
            "weight": self.weight,
            "healthy": self.healthy,
            "ejected_for": round(max(0.0, ejected), 3),
            "ejections": self.ejections,
            "consecutive_failures": self.failures,
            "active_requests": self.active,
        }

    def __repr__(self) -> str:
        return f"Target({self.base!r})"
