"""The GraphQL BFF apps: registry, per-frontend schemas, loaders, execution over HTTP.

Backend teams use :class:`SchemaModule`, :func:`field`, :class:`Info` and :class:`Context`;
the gateway uses :func:`build_graphql_apps`.
"""

from strawberry import ID
from strawberry.types import Info as _StrawberryInfo

from bff.graphql.app import GraphQLApp, GraphQLAppSettings, GraphQLRequest
from bff.graphql.context import ClientCache, Context
from bff.graphql.documents import DocumentCache, PreparedDocument
from bff.graphql.loaders import BatchLoader
from bff.graphql.projection import FrontendSchema, build_schema
from bff.graphql.registry import (
    FieldOptions,
    LoaderSpec,
    Registry,
    RegistryError,
    SchemaModule,
    field,
    field_options,
)

Info = _StrawberryInfo[Context, None]
"""The ``info`` argument of a resolver: ``info.context`` is the request's :class:`Context`."""

__all__ = [
    "ID",
    "BatchLoader",
    "ClientCache",
    "Context",
    "DocumentCache",
    "FieldOptions",
    "FrontendSchema",
    "GraphQLApp",
    "GraphQLAppSettings",
    "GraphQLRequest",
    "Info",
    "LoaderSpec",
    "PreparedDocument",
    "Registry",
    "RegistryError",
    "SchemaModule",
    "build_schema",
    "field",
    "field_options",
]
