"""The route table: precedence, methods, host and header matchers, strip_prefix, splits."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from bff.config import RouteConfig
from bff.errors import MethodNotAllowed, NotFound
from bff.proxy import Route, RouteTable, request_host

UPSTREAMS = {name: name for name in ("users", "users_next", "v1", "v2", "v3", "api", "root")}


def table(*routes: dict[str, Any]) -> RouteTable[str]:
    configs = [RouteConfig.model_validate({"id": f"r{i}", **r}) for i, r in enumerate(routes)]
    return RouteTable.from_config(configs, UPSTREAMS, default_max_body_bytes=1024)


def match(t: RouteTable[str], path: str, method: str = "GET", **headers: str) -> Route[str]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return t.match(path, method, raw)


def test_longest_prefix_wins_segment_wise() -> None:
    t = table(
        {"path": "/api", "upstream": "api"},
        {"path": "/api/users", "upstream": "users"},
    )
    assert match(t, "/api/users/42").id == "r1"
    assert match(t, "/api/users").id == "r1"
    assert match(t, "/api/users/").id == "r1"
    assert match(t, "/api/usersX").id == "r0"  # a prefix matches whole segments only
    assert match(t, "/api").id == "r0"
    with pytest.raises(NotFound):
        match(t, "/apix")
    with pytest.raises(NotFound):
        match(t, "/")


def test_a_root_route_catches_everything_else() -> None:
    t = table({"path": "/", "upstream": "root"}, {"path": "/api", "upstream": "api"})
    assert match(t, "/anything/at/all").id == "r0"
    assert match(t, "/").id == "r0"
    assert match(t, "/api/x").id == "r1"


def test_method_not_allowed_lists_the_allowed_methods() -> None:
    t = table(
        {"path": "/api/users", "methods": ["GET"], "upstream": "users"},
        {"path": "/api/users", "methods": ["PUT"], "headers": {"x-canary": "1"}, "upstream": "v1"},
    )
    with pytest.raises(MethodNotAllowed) as err:
        match(t, "/api/users/1", "POST")
    assert err.value.allow == ["GET", "HEAD"]  # GET implies HEAD; the canary did not match
    with pytest.raises(MethodNotAllowed) as err:
        match(t, "/api/users/1", "POST", x_canary="1")
    assert err.value.allow == ["PUT", "GET", "HEAD"]
    assert match(t, "/api/users/1", "HEAD").id == "r0"


def test_a_shorter_prefix_serves_a_method_the_longer_one_lacks() -> None:
    t = table(
        {"path": "/api", "methods": ["POST"], "upstream": "api"},
        {"path": "/api/users", "methods": ["GET"], "upstream": "users"},
    )
    assert match(t, "/api/users/1", "POST").id == "r0"
    assert match(t, "/api/users/1", "GET").id == "r1"


def test_header_matchers_come_first_on_the_same_prefix() -> None:
    t = table(
        {"path": "/api/users", "upstream": "users"},
        {"path": "/api/users", "headers": {"x-canary": "true"}, "upstream": "users_next"},
    )
    assert match(t, "/api/users/1", x_canary="true").pick_upstream() == "users_next"
    assert match(t, "/api/users/1", x_canary="false").pick_upstream() == "users"
    assert match(t, "/api/users/1", x_canary="TRUE").pick_upstream() == "users"  # exact value
    assert match(t, "/api/users/1").pick_upstream() == "users"


def test_every_header_matcher_must_hold() -> None:
    t = table(
        {"path": "/x", "upstream": "v1"},
        {"path": "/x", "headers": {"x-a": "1", "x-b": "2"}, "upstream": "v2"},
    )
    assert match(t, "/x", x_a="1", x_b="2").pick_upstream() == "v2"
    assert match(t, "/x", x_a="1").pick_upstream() == "v1"


def test_longest_prefix_beats_matchers_on_a_shorter_one() -> None:
    t = table(
        {"path": "/api", "headers": {"x-canary": "true"}, "upstream": "v2"},
        {"path": "/api/users", "upstream": "users"},
    )
    assert match(t, "/api/users/1", x_canary="true").pick_upstream() == "users"


@pytest.mark.parametrize(
    ("host", "route"),
    [
        ("api.example.com", "exact"),
        ("API.Example.COM:8443", "exact"),
        ("api.example.com.", "exact"),
        ("shop.example.org", "wild"),
        ("a.b.example.org", "wild"),
        ("example.org", "any"),
        ("other.net", "any"),
    ],
)
def test_host_matchers(host: str, route: str) -> None:
    t = table(
        {"path": "/", "upstream": "root"},
        {"path": "/", "hosts": ["api.example.com"], "upstream": "v1"},
        {"path": "/", "hosts": ["*.example.org"], "upstream": "v2"},
    )
    chosen = match(t, "/x", host=host).pick_upstream()
    assert chosen == {"exact": "v1", "wild": "v2", "any": "root"}[route]


def test_request_host() -> None:
    assert request_host([(b"host", b"Example.com:80")]) == "example.com"
    assert request_host([(b"host", b"[::1]:8080")]) == "[::1]"
    assert request_host([]) == ""


def test_strip_prefix() -> None:
    t = table(
        {"path": "/api/users", "upstream": "users", "strip_prefix": "/api"},
        {"path": "/v1", "upstream": "v1", "strip_prefix": "/v1"},
        {"path": "/keep", "upstream": "v2"},
    )
    assert match(t, "/api/users/42").upstream_path("/api/users/42") == "/users/42"
    assert match(t, "/v1").upstream_path("/v1") == "/"
    assert match(t, "/v1/a/").upstream_path("/v1/a/") == "/a/"
    assert match(t, "/keep/x").upstream_path("/keep/x") == "/keep/x"
    assert match(t, "/api/users/1").template == "/users/*"


def _split_route() -> Route[str]:
    t = table(
        {
            "path": "/api/users",
            "split": [
                {"upstream": "v1", "weight": 90},
                {"upstream": "v2", "weight": 10},
                {"upstream": "v3", "weight": 0},
            ],
        }
    )
    return match(t, "/api/users")


def test_weighted_split_decisions_follow_the_weights() -> None:
    route = _split_route()
    rng = random.Random(2024)
    counts = Counter(route.choose(rng.random()) for _ in range(10_000))
    assert abs(counts["v1"] / 10_000 - 0.90) <= 0.02
    assert abs(counts["v2"] / 10_000 - 0.10) <= 0.02
    assert counts["v3"] == 0  # weight 0: drained
    # And the live decision function, unseeded (2 points is over 6 standard deviations).
    live = Counter(route.pick_upstream() for _ in range(10_000))
    assert abs(live["v2"] / 10_000 - 0.10) <= 0.02
    assert live["v3"] == 0


def test_split_boundaries() -> None:
    route = _split_route()
    assert route.choose(0.0) == "v1"
    assert route.choose(0.8999) == "v1"
    assert route.choose(0.9) == "v2"
    assert route.choose(0.99999) == "v2"


def test_route_settings() -> None:
    t = table(
        {"path": "/a", "upstream": "v1", "max_body_bytes": 10, "timeout": 2, "read_timeout": 1},
        {"path": "/b", "upstream": "v1"},
    )
    a, b = match(t, "/a"), match(t, "/b")
    assert (a.max_body_bytes, a.timeout, a.read_timeout, a.connect_timeout) == (10, 2, 1, None)
    assert (b.max_body_bytes, b.timeout) == (1024, 30)
