"""One strawberry schema per frontend, projected from the registry.

:class:`FrontendSchema` keeps, for each type, only the fields tagged for its frontend (plus the
fields other modules added with ``extend``). The projection runs once when the schema is built,
so it costs nothing per request. A field hidden from a frontend is absent from its introspection
and SDL, and fails validation there like any unknown field.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from bff.graphql.registry import Registry, RegistryError, _Declared, field_options

__all__ = ["FrontendSchema", "build_schema"]


def _root_type(name: str, declared: list[_Declared]) -> type | None:
    if not declared:
        return None
    namespace: dict[str, Any] = {"__annotations__": {}}
    for i, d in enumerate(declared):
        # Python names must be unique in the class; the GraphQL name was fixed at registration,
        # so two frontends may each have their own ``products`` field.
        namespace[f"{d.field.python_name or 'field'}__{i}"] = d.field
    return strawberry.type(type(name, (), namespace))


class FrontendSchema(strawberry.Schema):
    """The schema one frontend (web, mobile, iot, ...) sees."""

    def __init__(self, frontend: str, registry: Registry, **kwargs: Any) -> None:
        # get_fields runs during super().__init__, so these come first.
        self.frontend = frontend
        self.registry = registry
        queries = [d for d in registry.queries if field_options(d.field).visible_to(frontend)]
        mutations = [d for d in registry.mutations if field_options(d.field).visible_to(frontend)]
        query = _root_type("Query", queries)
        if query is None:
            raise RegistryError(f"frontend {frontend!r} has no Query fields")
        super().__init__(
            query=query,
            mutation=_root_type("Mutation", mutations),
            config=StrawberryConfig(auto_camel_case=True, scalar_map=dict(registry.scalars)),
            **kwargs,
        )

    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        fields = list(type_definition.fields)
        fields.extend(self.registry.extensions_for(type_definition.name))
        return [f for f in fields if field_options(f).visible_to(self.frontend)]


def build_schema(frontend: str, registry: Registry) -> FrontendSchema:
    """Freeze ``registry`` and build ``frontend``'s schema from it."""
    registry.freeze()
    return FrontendSchema(frontend, registry)
