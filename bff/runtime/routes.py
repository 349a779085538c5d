"""Passthrough routes managed at run time: the file's, plus those added through the admin API.

:class:`RouteManager` owns the proxy's route set in one process. The file's routes come first
and are read-only; admin-managed routes are validated exactly like the file's
(:func:`bff.config.check_routes`: the route's own keys, known upstreams, unique ids, paths clear
of the gateway's own and never shadowed), kept in the store (``bff_routes``), and applied by
compiling a whole new route table and swapping it into the proxy in one assignment: a request
already routed keeps the route it started with.

Every process applies what the store holds: a process that changes a route applies it at once
and announces it (Redis pub/sub with ``state.backend: redis``); the others re-read the store when
they hear of it, or when they next poll it (``store.poll_interval``). A stored route that the
current configuration rejects (its upstream was removed by a reload, a file route now uses its
id or shadows it) is listed with its problems and not served until fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bff.config import GatewayConfig, RouteConfig, check_routes
from bff.errors import ConfigError
from bff.proxy import Proxy
from bff.runtime.events import ChangeEvents, LocalChangeEvents
from bff.store import RouteRecord, StoreConflict, StoreError

if TYPE_CHECKING:
    from bff.store import Store
    from bff.upstream import Upstream

__all__ = [
    "FileRouteReadOnly",
    "ManagedRoute",
    "RouteExists",
    "RouteInvalid",
    "RouteManager",
    "merge_patch",
]

log = logging.getLogger("bff.runtime.routes")

Problems = tuple[tuple[str, str], ...]
RoutesListener = Callable[[Sequence[RouteConfig]], None]

# While Redis announces changes, polling is only a safety net for a missed message.
_SAFETY_POLL_INTERVAL = 30.0


class RouteInvalid(Exception):
    """A route definition the configuration rejects; ``problems`` are (key path, message)
    pairs, paths relative to the route object."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in problems))
        self.problems = problems


class RouteExists(Exception):
    """A route with this id exists already (in the file or the store)."""


class FileRouteReadOnly(Exception):
    """The route is defined in the configuration file: change the file and reload."""


@dataclass(frozen=True, slots=True)
class ManagedRoute:
    """A route as the admin API lists it.

    ``config`` is None for a stored route the current configuration rejects (see ``problems``);
    such a route is not served. ``definition`` is the route object as stored (admin) or as
    configured, without defaults (file).
    """

    id: str
    source: Literal["file", "admin"]
    config: RouteConfig | None
    definition: dict[str, Any]
    created_at: float | None = None
    updated_at: float | None = None
    problems: Problems = field(default=())

    @property
    def active(self) -> bool:
        """Served by the proxy."""
        return self.config is not None


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` changed by a JSON merge patch (RFC 7396): ``null`` removes a key, objects
    merge, anything else replaces."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


_INDEXED = re.compile(r"routes\[(\d+)\](?: \('[^']*'\))?")


def _relative(problems: Sequence[tuple[str, str]], index: int, ids: Sequence[str]) -> Problems:
    """Problems of ``check_routes`` about route ``index``, with paths relative to that route
    and other routes named by id rather than by position."""

    def name(match: re.Match[str]) -> str:
        i = int(match.group(1))
        return f"route {ids[i]!r}" if i < len(ids) else match.group(0)

    own = f"routes[{index}]"
    out: list[tuple[str, str]] = []
    for path, message in problems:
        if path == own:
            path = ""
        elif path.startswith(own + "."):
            path = path[len(own) + 1 :]
        elif path.startswith(own + "["):
            path = path[len(own) :]
        out.append((path, _INDEXED.sub(name, message)))
    return tuple(out)


class RouteManager:
    """The route set of one gateway process (see the module docstring).

    Build it once per process; :meth:`start` loads the stored routes (before the gateway reports
    ready) and keeps them in step with the store; :meth:`aclose` stops that.
    """

    def __init__(
        self,
        config: GatewayConfig,
        proxy: Proxy,
        upstreams: Mapping[str, Upstream],
        store: Store | None,
        *,
        events: ChangeEvents | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.proxy = proxy
        self.store = store
        self.events: ChangeEvents = events or LocalChangeEvents()
        self.poll_interval = config.store.poll_interval if poll_interval is None else poll_interval
        self._config = config
        self._upstreams = upstreams
        self._records: list[RouteRecord] = []
        self._fingerprint: object = None
        self._admin: dict[str, ManagedRoute] = {}
        #: What the proxy serves: the file's routes, then the valid admin-managed ones.
        self.routes: list[RouteConfig] = list(config.routes)
        self._listeners: list[RoutesListener] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._store_ok = True

    # -- lifecycle --------------------------------------------------------------------------

    def on_change(self, listener: RoutesListener) -> None:
        """Call ``listener(routes)`` after every swap of the route set."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Load and apply the stored routes, then follow changes (the store must be open)."""
        if self.store is None:
            return
        try:
            await self.refresh()
        except StoreError as exc:
            log.warning(
                "could not load the admin-managed routes (%s); retrying in the background", exc
            )
        self.events.subscribe(self._wake.set)
        self.events.start()
        self._task = asyncio.create_task(self._follow(), name="bff-route-sync")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.events.aclose()

    async def _follow(self) -> None:
        while True:
            interval = _SAFETY_POLL_INTERVAL if self.events.live else self.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                if self._store_ok:
                    log.warning(
                        "cannot read admin-managed routes (%s); serving the last known", exc
                    )
                self._store_ok = False
            except Exception:
                log.exception("applying admin-managed routes failed; serving the last known")

    # -- reading ----------------------------------------------------------------------------

    def list(self) -> list[ManagedRoute]:
        """Every route: the file's (in file order), then the admin-managed ones (oldest first)."""
        out = [self._file_view(r) for r in self._config.routes]
        out.extend(self._admin.values())
        return out

    def get(self, route_id: str) -> ManagedRoute | None:
        for route in self._config.routes:
            if route.id == route_id:
                return self._file_view(route)
        return self._admin.get(route_id)

    @staticmethod
    def _file_view(route: RouteConfig) -> ManagedRoute:
        definition = route.model_dump(mode="json", exclude_defaults=True)
        return ManagedRoute(route.id, "file", route, {"id": route.id, **definition})

    # -- writing (the admin API) ------------------------------------------------------------

    def validate(
        self, definition: Mapping[str, Any], *, replacing: str | None = None
    ) -> RouteConfig:
        """The route ``definition`` would be, next to every other served route; raises
        :class:`RouteInvalid`. ``replacing``: the id of the admin route it would replace."""
        others = [r for r in self.routes if r.id != replacing]
        try:
            return check_routes(self._config, [*others, dict(definition)], source="route")[-1]
        except ConfigError as exc:
            ids = [r.id for r in others]
            raise RouteInvalid(_relative(exc.problems, len(others), ids)) from None

    def _require_store(self) -> Store:
        if self.store is None:
            raise StoreError("no store is configured")
        return self.store

    async def create(self, definition: Mapping[str, Any]) -> ManagedRoute:
        """Validate, store and apply a new route; announces it to the other processes."""
        store = self._require_store()
        route_id = definition.get("id")
        if isinstance(route_id, str):
            self._check_new_id(route_id)
        route = self.validate(definition)
        self._check_new_id(route.id)
        stored = _stored_definition(route.id, definition)
        try:
            await store.routes.insert(route.id, stored)
        except StoreConflict:
            raise RouteExists(f"a route with id {route.id!r} already exists") from None
        await self._changed()
        return self._admin.get(route.id) or ManagedRoute(route.id, "admin", route, stored)

    def _check_new_id(self, route_id: str) -> None:
        if any(r.id == route_id for r in self._config.routes):
            raise RouteExists(
                f"route {route_id!r} is defined in the configuration file (read-only here)"
            )
        if route_id in self._admin:
            raise RouteExists(f"a route with id {route_id!r} already exists (PATCH it)")

    async def update(self, route_id: str, patch: Mapping[str, Any]) -> ManagedRoute | None:
        """Apply a JSON merge patch to an admin-managed route; None when there is none."""
        store = self._require_store()
        self._check_writable(route_id)
        record = await store.routes.get(route_id)
        if record is None:
            return None
        if "id" in patch and patch["id"] != route_id:
            raise RouteInvalid((("id", "cannot be changed (create a new route instead)"),))
        definition = merge_patch(record.definition, patch)
        definition["id"] = route_id
        route = self.validate(definition, replacing=route_id)
        await store.routes.put(route_id, _stored_definition(route.id, definition))
        await self._changed()
        return self._admin.get(route_id)

    async def delete(self, route_id: str) -> ManagedRoute | None:
        """Remove an admin-managed route; the removed route, or None when there was none."""
        store = self._require_store()
        self._check_writable(route_id)
        before = self._admin.get(route_id)
        if not await store.routes.delete(route_id):
            return None
        await self._changed()
        return before or ManagedRoute(route_id, "admin", None, {"id": route_id})

    def _check_writable(self, route_id: str) -> None:
        if any(r.id == route_id for r in self._config.routes):
            raise FileRouteReadOnly(
                f"route {route_id!r} is defined in the configuration file: change the file and "
                "reload the gateway"
            )

    async def _changed(self) -> None:
        await self.refresh()
        await self.events.publish()

    # -- applying ---------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Re-read the store and apply what changed; True when the route set was swapped."""
        store = self._require_store()
        async with self._lock:
            records = await store.routes.list()
            if not self._store_ok:
                log.info("admin-managed routes readable again")
                self._store_ok = True
            records.sort(key=lambda r: (r.created_at, r.id))
            fingerprint = [(r.id, r.updated_at, r.definition) for r in records]
            if fingerprint == self._fingerprint:
                return False
            self._records = records
            self._fingerprint = fingerprint
            self._rebuild()
            return True

    def reconfigure(self, config: GatewayConfig, upstreams: Mapping[str, Upstream]) -> None:
        """Serve ``config``'s file routes over ``upstreams`` (a reload), with the stored routes
        re-validated against them."""
        self._config = config
        self._upstreams = upstreams
        self._rebuild()

    def _rebuild(self) -> None:
        accepted: list[RouteConfig] = list(self._config.routes)
        file_ids = {r.id for r in accepted}
        admin: dict[str, ManagedRoute] = {}
        for record in self._records:
            problems: Problems = ()
            route: RouteConfig | None = None
            if record.id in file_ids:
                problems = (("id", "the configuration file defines a route with this id"),)
            else:
                definition = {**record.definition, "id": record.id}
                try:
                    route = check_routes(self._config, [*accepted, definition])[-1]
                except ConfigError as exc:
                    ids = [r.id for r in accepted]
                    problems = _relative(exc.problems, len(accepted), ids)
            if route is not None:
                accepted.append(route)
            else:
                previous = self._admin.get(record.id)
                if previous is None or previous.problems != problems:
                    log.warning(
                        "admin-managed route %r is not served: %s",
                        record.id,
                        "; ".join(f"{p}: {m}" if p else m for p, m in problems),
                    )
            admin[record.id] = ManagedRoute(
                record.id,
                "admin",
                route,
                record.definition,
                record.created_at,
                record.updated_at,
                problems,
            )
        table, guards = Proxy.compile(self._config, self._upstreams, accepted)
        self.proxy.replace(table, guards)
        self._admin = admin
        self.routes = accepted
        for listener in self._listeners:
            try:
                listener(accepted)
            except Exception:
                log.exception("route listener failed")


def _stored_definition(route_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    # Stored as given (defaults stay defaults, so they follow future releases), id first.
    return {"id": route_id, **{k: v for k, v in definition.items() if k != "id"}}
