"""Building gateways for tests from the bundled demo configuration."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from importlib import resources
from typing import Any

import httpx
import yaml

from bff.asgi import ASGIApp, Receive, Scope, Send
from bff.auth import PRINCIPAL_KEY, Principal
from bff.config import GatewayConfig, parse_config

__all__ = ["demo_config", "gql", "with_principal"]

# Each demo config gets its own SQLite store in here (removed when the test run ends), so tests
# never write a bff-demo.db into the working directory.
_STORE_DIRS = tempfile.TemporaryDirectory(prefix="bff-test-stores-")


def demo_config(
    env: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> GatewayConfig:
    """The demo config with services at the URLs in ``env``, deep-merged with ``overrides``.

    The demo's rate-limit plans keep their tiers but get quotas no test exhausts (every test
    client comes from one address), unless ``overrides`` gives ``rate_limits.plans``.
    """
    text = resources.files("bff").joinpath("demo.yaml").read_text()
    data = yaml.safe_load(text)
    if "plans" not in (overrides or {}).get("rate_limits", {}):
        plans = data["rate_limits"]["plans"]
        data["rate_limits"]["plans"] = {tier: {"per_second": 1_000_000} for tier in plans}
    if overrides:
        _merge(data, overrides)
    text = yaml.safe_dump(data)
    env = {"BFF_DEMO_DIR": tempfile.mkdtemp(dir=_STORE_DIRS.name), **env}
    return parse_config(text, source="demo.yaml", env=env)


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def with_principal(app: ASGIApp, principal: Principal) -> ASGIApp:
    """``app`` with every request made by ``principal`` (until auth layers exist in a test)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[PRINCIPAL_KEY] = principal
        await app(scope, receive, send)

    return wrapped


async def gql(
    client: httpx.AsyncClient,
    app: str,
    query: str,
    variables: dict[str, Any] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """POST a GraphQL operation to ``/graphql/<app>``."""
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return await client.post(f"/graphql/{app}", json=body, **kwargs)
