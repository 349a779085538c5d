"""The registry backend teams write against: duplicates and unknown types fail at start-up."""

from __future__ import annotations

import re
from typing import Any

import pytest
import strawberry
from graphql import graphql

from bff.graphql import Registry, RegistryError, SchemaModule, build_schema, field
from bff.graphql.context import ClientCache, Context


@strawberry.type
class Stray:
    """A type no module registers."""

    id: strawberry.ID


gadgets = SchemaModule("gadgets")


@gadgets.type
class Gadget:
    id: strawberry.ID
    secret: str = field(frontends=["web"])


@gadgets.query
def gadget() -> Gadget:
    return Gadget(id=strawberry.ID("1"), secret="s")


def _module(name: str) -> SchemaModule:
    return SchemaModule(name)


def test_a_field_registered_by_two_modules_names_both() -> None:
    a, b = _module("team_a"), _module("team_b")

    @a.type
    class Thing:
        id: strawberry.ID

    @b.extend(Thing)
    class MoreThing:
        id: strawberry.ID = field(name="id")

    with pytest.raises(RegistryError, match=r"Thing\.id is registered in team_a and in team_b"):
        Registry.from_modules([a, b])


def test_the_same_name_on_disjoint_frontends_is_allowed() -> None:
    a = _module("team_a")

    @a.query(name="things", frontends=["web"])
    def things_web(limit: int = 20) -> int:
        return limit

    @a.query(name="things", frontends=["mobile"])
    def things_mobile(limit: int = 10) -> int:
        return limit

    registry = Registry.from_modules([a])
    web = build_schema("web", registry)
    mobile = build_schema("mobile", registry)
    assert "things(limit: Int! = 20)" in web.as_str()
    assert "things(limit: Int! = 10)" in mobile.as_str()


def test_overlapping_frontends_are_a_duplicate() -> None:
    a = _module("team_a")

    @a.query(name="things", frontends=["web", "mobile"])
    def things_a() -> int:
        return 1

    @a.query(name="things", frontends=["mobile"])
    def things_b() -> int:
        return 2

    with pytest.raises(RegistryError, match=r"Query\.things is registered twice in team_a.*mobile"):
        Registry.from_modules([a])


def test_a_type_registered_twice_names_both_modules() -> None:
    a, b = _module("team_a"), _module("team_b")

    @a.type(name="Widget")
    class WidgetA:
        id: strawberry.ID

    @b.type(name="Widget")
    class WidgetB:
        id: strawberry.ID

    with pytest.raises(
        RegistryError, match="type 'Widget' is registered twice: in team_a and in team_b"
    ):
        Registry.from_modules([a, b])


def test_a_loader_name_used_twice_names_both_modules() -> None:
    a, b = _module("team_a"), _module("team_b")

    async def batch(ctx: Any, keys: list[int]) -> list[int]:
        return keys

    a.loader("things")(batch)
    b.loader("things")(batch)
    with pytest.raises(
        RegistryError, match="loader 'things' is declared twice: in team_a and in team_b"
    ):
        Registry.from_modules([a, b])


def test_a_field_of_an_unregistered_type_fails() -> None:
    a = _module("team_a")

    @a.query
    def stray() -> Stray:
        return Stray(id=strawberry.ID("1"))

    registry = Registry.from_modules([a])
    with pytest.raises(RegistryError, match=re.escape("Query.stray (team_a) returns 'Stray'")):
        build_schema("web", registry)


def test_the_registry_is_frozen_once_built() -> None:
    a = _module("team_a")

    @a.query
    def ping() -> str:
        return "pong"

    registry = Registry.from_modules([a])
    build_schema("web", registry)
    with pytest.raises(RegistryError, match="frozen"):
        registry.add(_module("late"))


def test_unknown_module_names_fail_clearly() -> None:
    with pytest.raises(RegistryError, match="cannot be imported"):
        Registry.from_module_names(["schema.nope"])
    with pytest.raises(RegistryError, match="defines no SchemaModule"):
        Registry.from_module_names(["json"])


async def test_hidden_fields_fail_validation_like_unknown_fields() -> None:
    registry = Registry.from_modules([gadgets])
    web, iot = build_schema("web", registry), build_schema("iot", registry)
    ctx = Context(app="iot", loaders={}, clients=ClientCache({}))
    ok = await graphql(web._schema, "{ gadget { secret } }", context_value=ctx)
    assert ok.data == {"gadget": {"secret": "s"}}
    hidden = await graphql(iot._schema, "{ gadget { secret } }", context_value=ctx)
    assert hidden.errors and "Cannot query field 'secret'" in hidden.errors[0].message
    intro = await graphql(iot._schema, '{ __type(name: "Gadget") { fields { name } } }')
    assert intro.data == {"__type": {"fields": [{"name": "id"}]}}


def test_unresolvable_types_are_a_registry_error() -> None:
    a = _module("team_a")

    @a.type
    class Local:
        id: strawberry.ID

    @a.query
    def local() -> Local:
        return Local(id=strawberry.ID("1"))

    with pytest.raises(RegistryError, match="cannot be resolved"):
        build_schema("web", Registry.from_modules([a]))
