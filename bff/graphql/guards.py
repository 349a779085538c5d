"""Per-field checks installed once on a built schema.

Fields declared with ``requires_auth`` or ``scopes`` get their resolver wrapped in a check that
raises :class:`~bff.errors.Unauthenticated` or :class:`~bff.errors.Forbidden` before the
resolver runs, so only that field errors and the rest of the query still resolves. Fields that
need no check keep their resolver untouched: nothing is added to their hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema, default_field_resolver

from bff.errors import Forbidden, Unauthenticated
from bff.graphql.registry import field_options

__all__ = ["install_guards"]

_BACKREF = "strawberry-definition"


def _guard(
    resolve: Callable[..., Any], requires_auth: bool, scopes: frozenset[str]
) -> Callable[..., Any]:
    def guarded(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        principal = info.context.principal
        if requires_auth and not principal.is_authenticated:
            raise Unauthenticated("this field requires authentication")
        if scopes and not principal.has_scopes(scopes):
            missing = ", ".join(sorted(s for s in scopes if s not in principal.scopes))
            raise Forbidden(f"missing scope: {missing}")
        return resolve(source, info, **args)

    guarded.__wrapped__ = resolve  # type: ignore[attr-defined]
    return guarded


def install_guards(schema: GraphQLSchema) -> int:
    """Wrap the resolvers of guarded fields; returns how many were wrapped."""
    wrapped = 0
    for gtype in schema.type_map.values():
        if not isinstance(gtype, GraphQLObjectType) or gtype.name.startswith("__"):
            continue
        for gfield in gtype.fields.values():
            sfield = (gfield.extensions or {}).get(_BACKREF)
            if sfield is None:
                continue
            opts = field_options(sfield)
            if opts.requires_auth or opts.scopes:
                gfield.resolve = _guard(
                    gfield.resolve or default_field_resolver, opts.requires_auth, opts.scopes
                )
                wrapped += 1
    return wrapped
