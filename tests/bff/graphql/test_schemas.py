"""The sample domain's three schemas equal the reference SDLs (order and descriptions aside)."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema as build_sdl
from graphql import find_breaking_changes, find_dangerous_changes

from bff.graphql import Registry, build_schema
from bff.graphql.sdl import export_sdl

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference" / "schema"
COMMITTED = Path(__file__).resolve().parents[3] / "schema"
MODULES = ["schema.users", "schema.orders", "schema.products", "schema.reviews"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_module_names(MODULES)


@pytest.mark.parametrize("app", ["web", "mobile", "iot"])
def test_schema_equals_the_reference(registry: Registry, app: str) -> None:
    ours = build_sdl(export_sdl(build_schema(app, registry)._schema))
    source = REFERENCE / f"{app}.graphql"
    if not source.exists():
        source = COMMITTED / f"{app}.graphql"  # outside the workspace, the committed copy
    reference = build_sdl(source.read_text())
    for old, new in ((reference, ours), (ours, reference)):
        assert find_breaking_changes(old, new) == []
        assert find_dangerous_changes(old, new) == []


@pytest.mark.parametrize("app", ["web", "mobile", "iot"])
def test_committed_sdl_is_current(registry: Registry, app: str) -> None:
    assert (COMMITTED / f"{app}.graphql").read_text() == export_sdl(
        build_schema(app, registry)._schema
    )
