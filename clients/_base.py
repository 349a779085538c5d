"""What every sample client shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from bff.errors import NotFound
from bff.upstream import Upstream

__all__ = ["ServiceClient", "parse_datetime"]


def parse_datetime(value: str) -> datetime:
    """An ISO-8601 timestamp as the services send it (``2025-06-01T00:00:00Z``)."""
    return datetime.fromisoformat(value)


class ServiceClient:
    """A typed client of one upstream, looked up by name in the gateway's upstream pool."""

    default_upstream = ""

    def __init__(self, upstreams: Mapping[str, Upstream], *, upstream: str | None = None) -> None:
        self.upstream = upstreams[upstream or self.default_upstream]

    async def _get_one(self, path: str, template: str) -> object | None:
        try:
            return await self.upstream.get_json(path, template=template)
        except NotFound:
            return None
