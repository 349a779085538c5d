"""The route table: which route serves a request, and where it goes.

Routes are compiled once at start-up. Matching walks the normalized path's prefixes from the
longest to ``/`` (one dictionary lookup each), so its cost does not grow with the number of
routes. On the same prefix, routes with ``hosts`` or ``headers`` matchers are tried before those
without (in configuration order otherwise). The first route whose matchers and methods accept the
request wins; when some route matched everything but the method, the answer is 405 with the
methods those routes allow.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bff.errors import MethodNotAllowed, NotFound
from bff.proxy.cache_policy import RouteCachePolicy
from bff.proxy.headers import HeaderTransform

if TYPE_CHECKING:
    from bff.config import RouteConfig

__all__ = ["Route", "RouteTable", "request_host"]

U = TypeVar("U")

Headers = Sequence[tuple[bytes, bytes]]


def request_host(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's host name: lower case, without port or trailing dot ('' when absent)."""
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):
                end = host.find("]")
                return host[: end + 1] if end > 0 else host
            name_part, _, port = host.rpartition(":")
            if name_part and port.isdigit():
                host = name_part
            return host.rstrip(".")
    return ""


class Route(Generic[U]):
    """One compiled passthrough route; ``U`` is what ``upstream``/``split`` names resolve to."""

    __slots__ = (
        "_choices",
        "_cumulative",
        "_random",
        "_total",
        "allow",
        "allow_encoded_slashes",
        "cache",
        "config",
        "connect_timeout",
        "has_matchers",
        "header_matchers",
        "hosts_exact",
        "hosts_suffix",
        "id",
        "max_body_bytes",
        "methods",
        "prefix",
        "read_timeout",
        "request_transform",
        "response_transform",
        "strip_prefix",
        "template",
        "timeout",
    )

    def __init__(
        self,
        config: RouteConfig,
        upstreams: Mapping[str, U],
        *,
        default_max_body_bytes: int,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.id = config.id
        self.prefix = config.path
        self.methods = frozenset(config.methods)
        self.allow = list(config.methods)
        self.hosts_exact = frozenset(h for h in config.hosts if not h.startswith("*."))
        self.hosts_suffix = tuple(h[1:] for h in config.hosts if h.startswith("*."))
        self.header_matchers = tuple(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in config.headers.items()
        )
        self.has_matchers = bool(config.hosts or config.headers)
        strip = config.strip_prefix
        self.strip_prefix = strip if strip and strip != "/" else ""
        self.timeout = config.timeout
        self.connect_timeout = config.connect_timeout
        self.read_timeout = config.read_timeout
        self.max_body_bytes = config.max_body_bytes or default_max_body_bytes
        self.allow_encoded_slashes = config.allow_encoded_slashes
        self.request_transform = HeaderTransform.from_config(config.transforms.request)
        self.response_transform = HeaderTransform.from_config(config.transforms.response)
        #: The response cache's policy (``cache:``), or None: not cached.
        self.cache = RouteCachePolicy(config.cache) if config.cache is not None else None
        forwarded_prefix = self.upstream_path(self.prefix)
        self.template = forwarded_prefix.rstrip("/") + "/*"
        if config.split is not None:
            branches = [(upstreams[s.upstream], s.weight) for s in config.split if s.weight > 0]
        else:
            assert config.upstream is not None
            branches = [(upstreams[config.upstream], 1)]
        self._choices = [u for u, _ in branches]
        self._cumulative: list[int] = []
        total = 0
        for _, weight in branches:
            total += weight
            self._cumulative.append(total)
        self._total = total
        self._random = rand

    def accepts(self, host: str | None, headers: Headers) -> bool:
        """Whether the ``hosts`` and ``headers`` matchers accept the request."""
        if self.hosts_exact or self.hosts_suffix:
            if host is None:
                host = request_host(headers)
            if host not in self.hosts_exact and not host.endswith(self.hosts_suffix):
                return False
        for name, wanted in self.header_matchers:
            for key, value in headers:
                if key == name and value == wanted:
                    break
            else:
                return False
        return True

    def choose(self, r: float) -> U:
        """The upstream for a uniform random number ``r`` in [0, 1): each branch of a split
        gets a share proportional to its weight."""
        if len(self._choices) == 1:
            return self._choices[0]
        return self._choices[bisect.bisect_right(self._cumulative, r * self._total)]

    def pick_upstream(self) -> U:
        """The upstream for the next request (a weighted random choice for a split)."""
        if len(self._choices) == 1:
            return self._choices[0]
        return self.choose(self._random())

    def upstream_path(self, path: str) -> str:
        """``path`` (normalized, under this route's prefix) with ``strip_prefix`` removed."""
        strip = self.strip_prefix
        if not strip:
            return path
        rest = path[len(strip) :]
        return rest if rest.startswith("/") else "/" + rest

    def __repr__(self) -> str:
        return f"Route({self.id!r}, {self.prefix!r})"


class RouteTable(Generic[U]):
    """Compiled routes by prefix."""

    def __init__(self, routes: Iterable[Route[U]]) -> None:
        self.routes = list(routes)
        by_prefix: dict[str, list[Route[U]]] = {}
        for route in self.routes:
            by_prefix.setdefault(route.prefix, []).append(route)
        # Matchers first; sorted() is stable, so configuration order holds otherwise.
        self._by_prefix = {
            prefix: tuple(sorted(group, key=lambda r: not r.has_matchers))
            for prefix, group in by_prefix.items()
        }

    @classmethod
    def from_config(
        cls,
        configs: Iterable[RouteConfig],
        upstreams: Mapping[str, U],
        *,
        default_max_body_bytes: int,
        **kwargs: Any,
    ) -> RouteTable[U]:
        """Compile ``routes:`` (already validated: upstream names exist)."""
        return cls(
            Route(c, upstreams, default_max_body_bytes=default_max_body_bytes, **kwargs)
            for c in configs
        )

    def match(self, path: str, method: str, headers: Headers) -> Route[U]:
        """The route for a request, or :class:`NotFound` / :class:`MethodNotAllowed`."""
        by_prefix = self._by_prefix
        prefix = path.rstrip("/") or "/"
        host: str | None = None
        allowed: list[str] | None = None
        while True:
            group = by_prefix.get(prefix)
            if group is not None:
                for route in group:
                    if route.has_matchers:
                        if host is None and (route.hosts_exact or route.hosts_suffix):
                            host = request_host(headers)
                        if not route.accepts(host, headers):
                            continue
                    if method in route.methods:
                        return route
                    if allowed is None:
                        allowed = []
                    allowed.extend(m for m in route.allow if m not in allowed)
            if prefix == "/":
                break
            cut = prefix.rfind("/")
            prefix = prefix[:cut] if cut > 0 else "/"
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here", allow=allowed)
        raise NotFound("no route for this path")
