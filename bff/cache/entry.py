"""A cached HTTP response as stored bytes: status, headers, body, when and for how long.

Any cache of the gateway that stores whole responses uses this envelope, so an entry written by
one process (or one version) is read by every other, and a corrupt or foreign value reads as a
miss, never as an error.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass

import orjson

__all__ = ["CachedResponse"]

_MAGIC = b"bffR1"
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A response kept for ``max_age`` seconds from ``stored_at`` (wall-clock seconds)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    max_age: float

    def age(self, now: float | None = None) -> int:
        """Whole seconds since it was stored (the ``Age`` header)."""
        elapsed = (time.time() if now is None else now) - self.stored_at
        return max(0, math.floor(elapsed))

    def fresh(self, now: float | None = None) -> bool:
        return self.age(now) < self.max_age

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def to_bytes(self) -> bytes:
        meta = orjson.dumps(
            {"s": self.status, "h": self.headers, "t": self.stored_at, "a": self.max_age}
        )
        return b"".join((_MAGIC, _LENGTH.pack(len(meta)), meta, self.body))

    @classmethod
    def from_bytes(cls, data: bytes | None) -> CachedResponse | None:
        """The response stored in ``data``; ``None`` when it is not one (or corrupt)."""
        if not data or not data.startswith(_MAGIC):
            return None
        start = len(_MAGIC) + _LENGTH.size
        try:
            (length,) = _LENGTH.unpack_from(data, len(_MAGIC))
            meta = orjson.loads(data[start : start + length])
            headers = tuple((str(k), str(v)) for k, v in meta["h"])
            return cls(
                int(meta["s"]),
                headers,
                data[start + length :],
                float(meta["t"]),
                float(meta["a"]),
            )
        except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
