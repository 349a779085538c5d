"""The request body, streamed to the upstream as it arrives and counted against the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bff.asgi import Receive
from bff.errors import BadRequest, PayloadTooLarge
from bff.upstream import UpstreamCall

__all__ = ["ClientDisconnected", "RequestBody"]


class ClientDisconnected(BadRequest):
    """The client went away before its request body was complete (nobody gets an answer)."""

    @classmethod
    def default_message(cls) -> str:
        return "client disconnected"


class RequestBody:
    """An async iterable over the ASGI request body, for ``UpstreamCall.content``.

    Nothing is buffered: each chunk goes upstream as the server hands it over, so memory stays
    flat whatever the size. Past ``limit`` bytes it stops with :class:`PayloadTooLarge`. The
    first chunk sets ``call.body_sent`` (the call can no longer be retried); a failure on the
    client's side is put in ``call.body_error``, so the upstream is not blamed for it.
    """

    __slots__ = ("_call", "_limit", "_receive", "complete", "received")

    def __init__(self, receive: Receive, limit: int, call: UpstreamCall) -> None:
        self._receive = receive
        self._limit = limit
        self._call = call
        self.received = 0
        self.complete = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        receive, limit, call = self._receive, self._limit, self._call
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                error: Exception = ClientDisconnected()
                call.body_error = error
                raise error
            chunk = message.get("body", b"")
            if chunk:
                self.received += len(chunk)
                if self.received > limit:
                    error = PayloadTooLarge(f"request body over {limit} bytes")
                    call.body_error = error
                    raise error
                call.body_sent = True
                yield chunk
            if not message.get("more_body", False):
                self.complete = True
                return
