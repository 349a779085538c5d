"""Schema files: export the SDL each app serves, and check the code against committed files.

``bff schema check`` fails when the code's schema differs from ``schema/<app>.graphql`` and sorts
each change into *breaking* (a client's valid query may now fail: removed field, type or enum
value, changed type, new required argument) or *safe* (additions, new optional arguments,
description changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    lexicographic_sort_schema,
    print_schema,
)

__all__ = ["SchemaDiff", "diff_sdl", "export_sdl"]


def export_sdl(schema: GraphQLSchema) -> str:
    """The schema's SDL, types sorted by name so files diff cleanly."""
    # Sorting rebuilds every type; going through SDL first drops the runtime enum serializers
    # that a rebuilt enum type could not print default values with.
    plain = build_schema(print_schema(schema))
    return print_schema(lexicographic_sort_schema(plain)) + "\n"


@dataclass
class SchemaDiff:
    """Differences from the committed SDL (``old``) to the code's (``new``)."""

    breaking: list[str] = field(default_factory=list)
    safe: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.breaking or self.safe)


def diff_sdl(old_sdl: str, new_sdl: str) -> SchemaDiff:
    """Classify the changes between two SDL documents."""
    old = build_schema(old_sdl)
    new = build_schema(new_sdl)
    diff = SchemaDiff()
    diff.breaking = [f"{c.type.name}: {c.description}" for c in find_breaking_changes(old, new)]
    diff.safe = [f"{c.type.name}: {c.description}" for c in find_dangerous_changes(old, new)]
    # What the new schema adds shows up as a "removal" when looking from new to old.
    for change in find_breaking_changes(new, old):
        kind = change.type.name
        if kind.endswith("_REMOVED"):
            diff.safe.append(f"{kind.replace('_REMOVED', '_ADDED')}: {_added(change.description)}")
        elif kind == "REQUIRED_ARG_ADDED":
            diff.safe.append(f"ARG_REMOVED_OPTIONAL: {change.description}")
    for dangerous in find_dangerous_changes(new, old):
        if dangerous.type.name == "OPTIONAL_ARG_ADDED":
            continue
        diff.safe.append(f"{dangerous.type.name}: {dangerous.description}")
    if not diff.changed:
        printed_old = print_schema(lexicographic_sort_schema(old))
        printed_new = print_schema(lexicographic_sort_schema(new))
        if printed_old != printed_new:
            diff.safe.append("DESCRIPTION_OR_ORDER_CHANGED: descriptions or directives differ")
    return diff


def _added(description: str) -> str:
    return description.replace(" was removed.", " was added.")
