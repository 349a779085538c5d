"""The gateway's own HTTP/1.1 client: asyncio protocols, httptools parsing, a fair pool."""

from bff.upstream.http1.connection import Http1Connection
from bff.upstream.http1.transport import Http1Transport

__all__ = ["Http1Connection", "Http1Transport"]
