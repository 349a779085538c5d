"""Loader values that outlive a request: a shared cache of entity fetches, and field fallbacks.

A loader declared with ``shared_ttl`` (:class:`~bff.graphql.registry.LoaderSpec`) first looks
its keys up in the gateway's cache store, and asks the upstream only for the keys it misses;
what the upstream returns serves every request for ``shared_ttl`` seconds.

A loader declared with ``stale_if_error`` keeps the last good value of each key for that many
seconds. When the upstream fails for a key (:class:`~bff.errors.UpstreamError`,
:class:`~bff.errors.UpstreamTimeout`, or :class:`~bff.errors.UpstreamUnavailable` when its
breaker is open), the kept value is served instead of the error, and the value is marked stale
in the request's :class:`~bff.graphql.context.Context`: the executor reports every place it
lands in the response's ``extensions.degraded``.

Values are stored as JSON in the :class:`~bff.cache.CacheStore` (memory or Redis), so every
process shares them; the loader's ``parse`` turns them into typed values on the way out.

Keeping a fallback costs a write per key, so a key's kept value is rewritten at most every
tenth of its ``stale_if_error`` (30 s for 300 s): the fallback is then at most that much older
than the last good value, and a hot loader does not pay a write per key per request (measured
for q1's 113 products: 0.27 ms of CPU when every value was rewritten, 0.075 ms now; see
docs/performance.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from bff.cache import CacheStore, cache_key
from bff.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

if TYPE_CHECKING:
    from bff.graphql.context import Context
    from bff.graphql.registry import LoaderSpec

__all__ = ["STALE_ERRORS", "LoaderCache", "parse_values"]

log = logging.getLogger("bff.graphql")

STALE_ERRORS = (UpstreamError, UpstreamTimeout, UpstreamUnavailable)
"""The failures a stale value may stand in for (the upstream's, never a bad request)."""

_MISSING: Any = object()
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,100}")

REFRESH_FRACTION = 0.1
"""A kept fallback value is rewritten at most every ``stale_if_error * REFRESH_FRACTION``."""
MAX_TRACKED = 100_000
"""Most keys whose last fallback write this process remembers (then it starts over)."""


class LoaderCache:
    """Shared and stale loader values in one :class:`~bff.cache.CacheStore`."""

    def __init__(self, store: CacheStore, *, clock: Any = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._unencodable: set[str] = set()
        self._kept_at: dict[str, float] = {}  # fallback key -> when this process last wrote it
        self._prefixes: dict[tuple[str, str], str | None] = {}

    def _name(self, kind: str, spec: LoaderSpec, key: Any) -> str:
        prefix = self._prefixes.get((kind, spec.name), _MISSING)
        if prefix is _MISSING:
            plain = _PLAIN.fullmatch(spec.name) is not None
            prefix = self._prefixes[(kind, spec.name)] = (
                f"loader:{kind}:{spec.name}:" if plain else None
            )
        if prefix is not None:
            kind_of_key = type(key)
            if kind_of_key is int:
                return prefix + str(key)
            if kind_of_key is str and _PLAIN.fullmatch(key):
                return prefix + key
        # Anything else (tuples, odd characters) is hashed into a key of fixed shape.
        return cache_key(f"loader:{kind}", spec.name, orjson.dumps(key, default=repr))

    def _encode(self, spec: LoaderSpec, value: Any) -> bytes | None:
        try:
            return orjson.dumps(value)
        except TypeError:
            if spec.name not in self._unencodable:
                self._unencodable.add(spec.name)
                log.warning(
                    "loader %r returns values that are not JSON; they are not cached "
                    "(return JSON from batch and name a parse function)",
                    spec.name,
                )
            return None

    async def load(self, spec: LoaderSpec, context: Context, keys: Sequence[Any]) -> Sequence[Any]:
        """One value per key, as ``spec.batch`` would return them (see the module docstring)."""
        results: list[Any] = [_MISSING] * len(keys)
        if spec.shared_ttl:
            names = [self._name("shared", spec, k) for k in keys]
            for i, blob in enumerate(await self.store.get_many(names)):
                if blob is not None:
                    results[i] = orjson.loads(blob)
        todo = [i for i, v in enumerate(results) if v is _MISSING]
        stale: set[int] = set()
        if todo:
            stale = await self._fetch(spec, context, keys, todo, results)
        return self._finish(spec, context, results, stale)

    async def _fetch(
        self,
        spec: LoaderSpec,
        context: Context,
        keys: Sequence[Any],
        todo: list[int],
        results: list[Any],
    ) -> set[int]:
        try:
            fetched = list(await spec.batch(context, [keys[i] for i in todo]))
        except STALE_ERRORS as exc:
            if not spec.stale_if_error:
                raise
            fetched = [exc] * len(todo)
        if len(fetched) != len(todo):
            raise RuntimeError(
                f"loader {spec.name!r} returned {len(fetched)} values for {len(todo)} keys"
            )
        shared: dict[str, bytes] = {}
        kept: dict[str, bytes] = {}
        failed: list[int] = []
        now = self._clock()
        refresh = (spec.stale_if_error or 0) * REFRESH_FRACTION
        kept_at = self._kept_at
        if len(kept_at) > MAX_TRACKED:
            kept_at.clear()
        for i, value in zip(todo, fetched, strict=True):
            results[i] = value
            if isinstance(value, BaseException):
                if spec.stale_if_error and isinstance(value, STALE_ERRORS):
                    failed.append(i)
                continue
            keep_name = None
            if spec.stale_if_error and value is not None:
                keep_name = self._name("stale", spec, keys[i])
                if now - kept_at.get(keep_name, -refresh - 1.0) < refresh:
                    keep_name = None  # written moments ago: still the last good value
            if keep_name is None and not spec.shared_ttl:
                continue
            blob = self._encode(spec, value)
            if blob is None:
                continue
            if spec.shared_ttl:
                shared[self._name("shared", spec, keys[i])] = blob
            if keep_name is not None:
                kept[keep_name] = blob
                kept_at[keep_name] = now
        if shared:
            await self.store.set_many(shared, spec.shared_ttl or 0)
        if kept:
            await self.store.set_many(kept, spec.stale_if_error or 0)
        stale: set[int] = set()
        if failed:
            names = [self._name("stale", spec, keys[i]) for i in failed]
            for i, blob in zip(failed, await self.store.get_many(names), strict=True):
                if blob is not None:
                    results[i] = orjson.loads(blob)
                    stale.add(i)
        return stale

    def _finish(
        self, spec: LoaderSpec, context: Context, results: list[Any], stale: set[int]
    ) -> list[Any]:
        results = parse_values(spec, results)
        for i in stale:
            if not isinstance(results[i], BaseException):
                context.mark_stale(results[i])
        return results


def parse_values(spec: LoaderSpec, values: Sequence[Any]) -> list[Any]:
    """``values`` through the loader's ``parse`` (``None`` and errors untouched); an item that
    breaks the loader's own contract becomes an :class:`~bff.errors.UpstreamError`."""
    parse = spec.parse
    out = list(values)
    if parse is None:
        return out
    for i, value in enumerate(out):
        if value is None or isinstance(value, BaseException):
            continue
        try:
            out[i] = parse(value)
        except (KeyError, TypeError, ValueError) as exc:
            error = UpstreamError(f"loader {spec.name!r} got an invalid value")
            error.__cause__ = exc
            out[i] = error
    return out
