"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from bff.auth.principal import ANONYMOUS, Principal
from bff.graphql.loaders import BatchLoader, Loaders

if TYPE_CHECKING:
    from bff.graphql.loader_cache import LoaderCache
    from bff.graphql.registry import LoaderSpec
    from bff.upstream import Upstream

__all__ = ["ClientCache", "Context"]

C = TypeVar("C")


class ClientCache:
    """Per-process typed clients, built on first use from the upstream pool.

    A client class takes the upstream mapping as its only positional argument
    (``UsersClient(upstreams)``); one instance per class serves every request.
    """

    def __init__(self, upstreams: Mapping[str, Upstream]) -> None:
        self.upstreams = upstreams
        self._clients: dict[Callable[..., Any], Any] = {}

    def get(self, cls: Callable[[Mapping[str, Upstream]], C]) -> C:
        client = self._clients.get(cls)
        if client is None:
            client = self._clients[cls] = cls(self.upstreams)
        return client


class Context:
    """What a resolver may use: the caller, the request's loaders, clients and upstreams.

    ``degraded`` collects the paths served from a stale fallback; ``extensions`` is merged into
    the response's ``extensions``. ``stale`` holds the values loaders served from a fallback
    (by ``id``), so the executor can tell where they land; ``loader_cache`` keeps loader values
    across requests (``None``: no loader does).
    """

    __slots__ = (
        "_loaders",
        "app",
        "clients",
        "degraded",
        "extensions",
        "headers",
        "loader_cache",
        "principal",
        "stale",
    )

    def __init__(
        self,
        *,
        app: str,
        loaders: dict[str, LoaderSpec],
        clients: ClientCache,
        principal: Principal = ANONYMOUS,
        headers: Mapping[str, str] | None = None,
        loader_cache: LoaderCache | None = None,
    ) -> None:
        self.app = app
        self.principal = principal
        self.clients = clients
        self.headers = headers or {}
        self.degraded: list[str] = []
        self.extensions: dict[str, Any] = {}
        self.stale: dict[int, Any] = {}
        self.loader_cache = loader_cache
        self._loaders = Loaders(loaders, self)

    def mark_stale(self, value: Any) -> None:
        """Record ``value`` (and the items of a list) as served from a stale fallback."""
        self.stale[id(value)] = value
        if type(value) is list:
            for item in value:
                self.stale[id(item)] = item

    def stale_at(self, path: list[str | int]) -> None:
        """The executor found a stale value at ``path``: report it in ``extensions.degraded``."""
        self.degraded.append(".".join(str(p) for p in path))

    @property
    def loaders(self) -> Loaders:
        return self._loaders

    def loader(self, name: str) -> BatchLoader:
        """The request's loader called ``name``."""
        return self._loaders[name]

    def client(self, cls: Callable[[Mapping[str, Upstream]], C]) -> C:
        """The process-wide instance of a typed client class."""
        return self.clients.get(cls)

    @property
    def upstreams(self) -> Mapping[str, Upstream]:
        return self.clients.upstreams
