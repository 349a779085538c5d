"""REST batch sources: many keys, one request per chunk, results matched by key.

Services promise no order for batch answers, so results are matched to keys by the key field(s)
of each item, never by position (the mistake GraphQL Mesh makes). Unknown keys come back as
``None`` (or ``[]`` for one-to-many sources); a failed chunk fails only its own keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from bff.errors import GatewayError, UpstreamError
from bff.upstream.recorder import one_batch
from bff.upstream.upstream import Upstream

__all__ = ["RestBatch"]

K = TypeVar("K")
V = TypeVar("V")


def _join_keys(param: str) -> Callable[[Sequence[Any]], dict[str, str]]:
    def encode(keys: Sequence[Any]) -> dict[str, str]:
        return {param: ",".join(str(k) for k in keys)}

    return encode


class RestBatch(Generic[K, V]):
    """A batch endpoint such as ``GET /products?ids=1,2,3`` or ``GET /reviews?product_ids=1,2``.

    ``key_field`` names the item field holding the key (a tuple of names for composite keys, in
    which case keys are tuples). ``many``: each key maps to a list of items (reviews of a
    product) instead of one. ``parse`` turns an item dict into a typed value. ``encode`` turns a
    chunk of keys into query parameters (default: ``{key_param: "1,2,3"}``).
    """

    def __init__(
        self,
        *,
        path: str,
        key_field: str | tuple[str, ...],
        key_param: str | None = None,
        max_batch_size: int = 100,
        many: bool = False,
        parse: Callable[[dict[str, Any]], V] | None = None,
        items_field: str = "items",
        params: Mapping[str, str] | None = None,
        encode: Callable[[Sequence[K]], Mapping[str, str]] | None = None,
        template: str | None = None,
    ) -> None:
        if encode is None and key_param is None:
            raise ValueError("RestBatch needs key_param or encode")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.path = path
        self.key_field = key_field
        self.max_batch_size = max_batch_size
        self.many = many
        self.parse = parse
        self.items_field = items_field
        self.params = dict(params or {})
        self.encode = encode or _join_keys(key_param or "")
        self.template = template or path

    def _key_of(self, item: dict[str, Any]) -> Any:
        kf = self.key_field
        if isinstance(kf, tuple):
            return tuple(item[f] for f in kf)
        return item[kf]

    async def _fetch_chunk(self, upstream: Upstream, chunk: Sequence[K]) -> dict[Any, Any]:
        params = dict(self.params)
        params.update(self.encode(chunk))
        body = await upstream.get_json(self.path, params, template=self.template)
        try:
            items = body[self.items_field]
            found: dict[Any, Any] = {}
            parse = self.parse
            if self.many:
                for item in items:
                    found.setdefault(self._key_of(item), []).append(parse(item) if parse else item)
            else:
                for item in items:
                    found[self._key_of(item)] = parse(item) if parse else item
            return found
        except (KeyError, TypeError, ValueError) as exc:
            # The upstream answered 200 with a body that breaks its own contract.
            raise UpstreamError(upstream=upstream.name) from exc

    async def fetch_partial(self, upstream: Upstream, keys: Sequence[K]) -> list[Any]:
        """One value per key, in order: the value, ``None``/``[]`` when unknown, or the error
        of the chunk that failed to load it."""
        unique = list(dict.fromkeys(keys))
        size = self.max_batch_size
        chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
        if len(chunks) == 1:
            results: list[Any] = [await _safe(self._fetch_chunk(upstream, chunks[0]))]
        else:
            with one_batch():
                results = await asyncio.gather(
                    *(_safe(self._fetch_chunk(upstream, c)) for c in chunks)
                )
        by_key: dict[Any, Any] = {}
        missing: Any = [] if self.many else None
        for chunk, result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                for k in chunk:
                    by_key[k] = result
            else:
                for k in chunk:
                    by_key[k] = result.get(k, missing)
        return [by_key[k] for k in keys]

    async def fetch(self, upstream: Upstream, keys: Sequence[K]) -> list[Any]:
        """Like :meth:`fetch_partial`, but raises the first chunk error instead."""
        values = await self.fetch_partial(upstream, keys)
        for v in values:
            if isinstance(v, BaseException):
                raise v
        return values


async def _safe(coro: Any) -> Any:
    try:
        return await coro
    except GatewayError as exc:
        return exc
