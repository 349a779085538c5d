"""Per-request batch loaders.

One :class:`BatchLoader` per declared :class:`~bff.graphql.registry.LoaderSpec` and request, so a
batch never mixes two callers' credentials. Keys are de-duplicated (the loader's cache), batches
over ``max_batch_size`` are split into chunks that run concurrently, and a failed key is never
cached: asking again retries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiodataloader import DataLoader

from bff.graphql.loader_cache import parse_values
from bff.graphql.registry import LoaderSpec, RegistryError
from bff.observability.context import loader_batch

if TYPE_CHECKING:
    from bff.graphql.context import Context

__all__ = ["BatchLoader", "Loaders"]


class BatchLoader(DataLoader[Any, Any]):
    """An ``aiodataloader.DataLoader`` bound to one request's context."""

    def __init__(self, spec: LoaderSpec, context: Context) -> None:
        super().__init__(max_batch_size=spec.max_batch_size)
        self.spec = spec
        self.context = context

    async def batch_load_fn(self, keys: list[Any]) -> Sequence[Any]:  # type: ignore[override]
        cache = self.context.loader_cache
        with loader_batch(self.spec.name, len(keys)):
            if cache is not None and self.spec.cached:
                values = await cache.load(self.spec, self.context, keys)
            else:
                values = await self.spec.batch(self.context, keys)
                if self.spec.parse is not None:
                    values = parse_values(self.spec, values)
        if len(values) != len(keys):
            raise RuntimeError(
                f"loader {self.spec.name!r} returned {len(values)} values for {len(keys)} keys"
            )
        for key, value in zip(keys, values, strict=True):
            if isinstance(value, BaseException):
                self.clear(key)
        return values


class Loaders:
    """The loaders of one request, created on first use and looked up by name."""

    __slots__ = ("_context", "_loaders", "_specs")

    def __init__(self, specs: dict[str, LoaderSpec], context: Context) -> None:
        self._specs = specs
        self._context = context
        self._loaders: dict[str, BatchLoader] = {}

    def __getitem__(self, name: str) -> BatchLoader:
        loader = self._loaders.get(name)
        if loader is None:
            spec = self._specs.get(name)
            if spec is None:
                raise RegistryError(f"no loader named {name!r} is declared")
            loader = self._loaders[name] = BatchLoader(spec, self._context)
        return loader

    def __contains__(self, name: object) -> bool:
        return name in self._specs
