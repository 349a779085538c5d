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

    Nothing is buffered beyond ``replay_limit``: each chunk goes upstream as the server hands it
    over, so memory stays flat whatever the size. Past ``limit`` bytes it stops with
    :class:`PayloadTooLarge`; a failure on the client's side is put in ``call.body_error``, so the
    upstream is not blamed for it.

    With ``replay_limit`` (idempotent calls to an upstream that retries), a copy of the first
    ``replay_limit`` bytes is kept so that a retry can send the body again (as Envoy buffers a
    request for retries); iterating again replays the copy, then goes on reading. Once a body
    outgrows the copy, or a body without one starts to flow, ``call.body_sent`` is set: the
    call can no longer be retried.
    """

    __slots__ = ("_call", "_kept", "_kept_bytes", "_limit", "_receive", "complete", "received")

    def __init__(
        self, receive: Receive, limit: int, call: UpstreamCall, *, replay_limit: int = 0
    ) -> None:
        self._receive = receive
        self._limit = limit
        self._call = call
        self._kept: list[bytes] | None = [] if replay_limit > 0 else None
        self._kept_bytes = replay_limit  # what the copy may still take
        self.received = 0
        self.complete = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self._kept:
            for chunk in list(self._kept):
                yield chunk
        receive, limit, call = self._receive, self._limit, self._call
        while not self.complete:
            message = await receive()
            if message["type"] == "http.disconnect":
                error: Exception = ClientDisconnected()
                call.body_error = error
                raise error
            chunk = message.get("body", b"")
            self.complete = not message.get("more_body", False)
            if chunk:
                self.received += len(chunk)
                if self.received > limit:
                    error = PayloadTooLarge(f"request body over {limit} bytes")
                    call.body_error = error
                    raise error
                kept = self._kept
                if kept is not None and len(chunk) <= self._kept_bytes:
                    kept.append(chunk)
                    self._kept_bytes -= len(chunk)
                else:
                    self._kept = None
                    call.body_sent = True
                yield chunk
