"""Response objects the transports return without building httpx's models.

An ``httpx.Response`` costs tens of microseconds to construct (header normalization, URL and
request bookkeeping); these subclasses fill in only what the gateway reads, and parse headers
only when asked. They behave as ``httpx.Response`` for every attribute the code base uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

__all__ = ["BufferedResponse", "StreamedResponse"]


class _LazyHeadersResponse(httpx.Response):
    """An ``httpx.Response`` built without httpx's model work; headers parsed only if read."""

    _raw_headers: Sequence[tuple[bytes, bytes]]
    _parsed_headers: httpx.Headers | None

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]:
        """The headers as received: ``(name, value)`` byte pairs, names as the upstream wrote
        them."""
        return self._raw_headers

    @property
    def headers(self) -> httpx.Headers:
        if self._parsed_headers is None:
            self._parsed_headers = httpx.Headers(list(self._raw_headers))
        return self._parsed_headers

    @headers.setter
    def headers(self, value: httpx.Headers) -> None:
        self._parsed_headers = httpx.Headers(value)

    def _init_common(self, status_code: int, raw_headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self._raw_headers = raw_headers
        self._parsed_headers = None
        self._request = None
        self.next_request = None
        self.extensions = {"http_version": b"HTTP/1.1"}
        self.history = []
        self.default_encoding = "utf-8"


class StreamedResponse(_LazyHeadersResponse):
    """An ``httpx.Response`` whose body is still to be read from ``stream``."""

    def __init__(  # deliberately not calling httpx.Response.__init__
        self,
        status_code: int,
        raw_headers: Sequence[tuple[bytes, bytes]],
        stream: httpx.AsyncByteStream,
    ) -> None:
        self._init_common(status_code, raw_headers)
        self.is_closed = False
        self.is_stream_consumed = False
        self.stream = stream
        self._num_bytes_downloaded = 0

    async def aclose(self) -> None:
        # httpx's own wraps this in its request context (for error messages): not needed here.
        if not self.is_closed:
            self.is_closed = True
            await self.stream.aclose()  # type: ignore[union-attr]


class BufferedResponse(_LazyHeadersResponse):
    """A complete, already read ``httpx.Response``.

    Everything behaves as an ``httpx.Response`` whose body was read (``content``, ``json()``,
    ``text``, ``aread()``).
    """

    def __init__(  # deliberately not calling httpx.Response.__init__
        self, status_code: int, raw_headers: Sequence[tuple[bytes, bytes]], content: bytes
    ) -> None:
        self._init_common(status_code, raw_headers)
        self.is_closed = True
        self.is_stream_consumed = True
        self._content = content
        self.stream = httpx.ByteStream(content)
        self._num_bytes_downloaded = len(content)
