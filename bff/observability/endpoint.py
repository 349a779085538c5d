"""The metrics endpoint (``observability.metrics.path``): Prometheus text, or OpenMetrics when
the scraper asks for it.

Served by the gateway itself, before authentication and rate limiting, and never counted as
traffic. It shows operational figures only (no request contents), but it does show route ids,
upstream names and target addresses: keep it off the public internet (see
docs/observability.md: a NetworkPolicy, a separate listener behind the load balancer, or a
path the edge proxy does not forward).
"""

from __future__ import annotations

import asyncio

from bff.asgi import Receive, Scope, Send, header, send_response
from bff.edge.request_id import REQUEST_ID_KEY
from bff.error_mapping import rest_error
from bff.errors import MethodNotAllowed
from bff.observability.metrics import Metrics

__all__ = ["MetricsEndpoint"]


class MetricsEndpoint:
    """ASGI app answering ``GET``/``HEAD`` with the exposition of ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            exc = MethodNotAllowed("the metrics endpoint answers GET", allow=["GET", "HEAD"])
            status, headers, body = rest_error(exc, scope.get(REQUEST_ID_KEY))
            await send_response(send, status, body, headers)
            return
        self.metrics.sample()  # on the loop: it reads the upstreams' state
        accept = (header(scope, b"accept") or b"").decode("latin-1")
        # Rendering (and, with several workers, reading their files) is kept off the loop.
        body, content_type = await asyncio.to_thread(self.metrics.exposition, accept)
        headers = [("content-type", content_type), ("cache-control", "no-store")]
        await send_response(send, 200, b"" if method == "HEAD" else body, headers)
