"""What changes while the gateway runs: admin-managed routes and configuration reloads.

- :class:`RouteManager`: the proxy's route set (the file's routes plus those managed through the
  admin API, validated like the file's, kept in the store and applied by every process);
- :class:`Reloader`: a new configuration applied without a restart (upstreams, routes, rate
  limits), swapped atomically;
- :func:`change_events_for`: how processes tell each other that the store changed (Redis
  pub/sub, or nothing: they poll).

See docs/admin.md and docs/deployment.md.
"""

from bff.runtime.events import (
    ChangeEvents,
    LocalChangeEvents,
    RedisChangeEvents,
    change_events_for,
)
from bff.runtime.reload import Reloader, ReloadResult, ensure_rate_limiter, plan_reload
from bff.runtime.routes import (
    FileRouteReadOnly,
    ManagedRoute,
    RouteExists,
    RouteInvalid,
    RouteManager,
    merge_patch,
)

__all__ = [
    "ChangeEvents",
    "FileRouteReadOnly",
    "LocalChangeEvents",
    "ManagedRoute",
    "RedisChangeEvents",
    "ReloadResult",
    "Reloader",
    "RouteExists",
    "RouteInvalid",
    "RouteManager",
    "change_events_for",
    "ensure_rate_limiter",
    "merge_patch",
    "plan_reload",
]
