"""A schema module for the cache-hint tests: type hints, field hints that win over them."""

from __future__ import annotations

from bff.graphql import ID, SchemaModule, field

module = SchemaModule(__name__)


@module.type(max_age=100)
class Thing:
    id: ID
    slow: int = field(max_age=5)
    secret: str = field(private=True)


@module.query(max_age=1000)
def thing() -> Thing:
    return Thing(id=ID("1"), slow=1, secret="s")


@module.query
def plain() -> Thing:
    return Thing(id=ID("1"), slow=1, secret="s")


@module.query
def count() -> int:
    return 1
