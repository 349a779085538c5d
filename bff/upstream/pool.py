"""All configured upstreams of one gateway process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bff.upstream.transport import TransportKind
from bff.upstream.upstream import Upstream

if TYPE_CHECKING:
    from bff.config import UpstreamConfig

__all__ = ["UpstreamPool"]


class UpstreamPool(Mapping[str, Upstream]):
    """The upstreams by name, built once at start-up and closed at shutdown."""

    def __init__(self, upstreams: Mapping[str, Upstream]) -> None:
        self._upstreams = dict(upstreams)

    @classmethod
    def from_config(
        cls,
        configs: Mapping[str, UpstreamConfig],
        *,
        transport: TransportKind | None = None,
        observe: Callable[[str], Any] | None = None,
    ) -> UpstreamPool:
        """Build one :class:`Upstream` per entry of ``upstreams:``.

        ``observe(name)`` gives the telemetry stage factory of upstream ``name`` (or None).
        """
        built: dict[str, Upstream] = {}
        for name, cfg in configs.items():
            built[name] = Upstream(
                name,
                [(t.url, t.weight) for t in cfg.targets],
                connect_timeout=cfg.timeout.connect,
                read_timeout=cfg.timeout.read,
                write_timeout=cfg.timeout.write,
                pool_timeout=cfg.timeout.pool,
                max_connections=cfg.pool.max_connections,
                max_keepalive_connections=cfg.pool.max_keepalive_connections,
                keepalive_expiry=cfg.pool.keepalive_expiry,
                transport=transport or cfg.transport,
                balance=cfg.balance,
                retries=cfg.retries,
                breaker=cfg.breaker,
                passive_health=cfg.passive_health,
                health_check=cfg.health_check,
                observe=observe(name) if observe is not None else None,
            )
        return cls(built)

    def __getitem__(self, name: str) -> Upstream:
        return self._upstreams[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)

    def replace(self, upstreams: Mapping[str, Upstream]) -> list[Upstream]:
        """Serve ``upstreams`` from now on (a configuration reload): one assignment, so a lookup
        sees the old set or the new one. Returns the upstreams no longer in the pool, still
        open: the caller closes them once the requests using them are done."""
        old, self._upstreams = self._upstreams, dict(upstreams)
        kept = {id(u) for u in self._upstreams.values()}
        return [u for u in old.values() if id(u) not in kept]

    def start(self) -> None:
        """Start background work (active health checks); call from the running event loop."""
        for upstream in self._upstreams.values():
            upstream.start()

    def describe(self) -> dict[str, dict[str, object]]:
        """Every upstream's state (:meth:`Upstream.describe`), by name."""
        return {name: u.describe() for name, u in self._upstreams.items()}

    async def aclose(self) -> None:
        """Stop health checks and close every connection pool."""
        for upstream in self._upstreams.values():
            await upstream.aclose()
