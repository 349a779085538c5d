"""Cache hints: how long a query's response may be cached, and by whom.

Types and fields declare hints at registration (``module.type(max_age=60)``,
``field(max_age=30, private=True)``); a response may be cached for the **smallest** ``max_age``
among the fields it selects, and only by the client itself (``private``) if any of them is
private. The rules are Apollo Server's ``cacheControl``:

- a field's own hint wins; else a field returning an object type takes that type's hint;
- a root field, or a field returning an object type, with no hint at all is not cacheable
  (``max_age`` 0): a new field is never cached by accident;
- a scalar or enum field without a hint inherits from its parent (it restricts nothing), and
  so does a field returning a type declared ``inherit_max_age`` (a value type such as
  ``Money``), its own fields included;
- a field that needs authentication (``requires_auth``/``scopes``) is private;
- mutations and introspection (``__schema``/``__type``) are never cacheable.

The hints are a property of the document, so the policy of an operation is worked out **once**
(:func:`operation_policy`, kept in the prepared document's ``analysis``); what depends on the
request (errors, stale fallbacks, a signed-in caller) only lowers it
(:meth:`CachePolicy.for_response`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_composite_type,
)

from bff.graphql.registry import TypeOptions, field_options

__all__ = ["NOT_CACHEABLE", "CachePolicy", "operation_policy"]

_BACKREF = "strawberry-definition"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """``max_age`` seconds (0: not cacheable), for shared caches unless ``private``."""

    max_age: int
    private: bool = False

    @property
    def cacheable(self) -> bool:
        return self.max_age > 0

    @property
    def shareable(self) -> bool:
        """Cacheable by shared caches (a CDN, the gateway's own response cache)."""
        return self.max_age > 0 and not self.private

    def header(self) -> str:
        """The ``Cache-Control`` value: ``max-age=60, public``, ``..., private`` or
        ``no-store``."""
        if self.max_age <= 0:
            return "no-store"
        return f"max-age={self.max_age}, {'private' if self.private else 'public'}"

    def for_response(self, *, failed: bool, personal: bool) -> CachePolicy:
        """The policy of one response: not cacheable when it ``failed`` (errors, or values
        served stale), private when it is ``personal`` (a signed-in caller, an app that
        requires credentials)."""
        if failed or self.max_age <= 0:
            return NOT_CACHEABLE
        if personal and not self.private:
            return CachePolicy(self.max_age, True)
        return self


NOT_CACHEABLE = CachePolicy(0)


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        type_options: Mapping[str, TypeOptions],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.type_options = type_options
        self.max_age: int | None = None  # None: nothing restricted it yet
        self.private = False
        self.seen: set[tuple[str, bool]] = set()

    def restrict(self, max_age: int) -> None:
        if self.max_age is None or max_age < self.max_age:
            self.max_age = max_age

    def selections(self, parent: object, node: SelectionSetNode, root: bool) -> None:
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                self.field(parent, selection, root)
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition
                target = self.schema.get_type(cond.name.value) if cond else parent
                self.selections(target, selection.selection_set, root)
            elif isinstance(selection, FragmentSpreadNode):
                # min and or are idempotent: a fragment counts once wherever it is spread.
                key = (selection.name.value, root)
                fragment = self.fragments.get(key[0])
                if fragment is None or key in self.seen:
                    continue
                self.seen.add(key)
                target = self.schema.get_type(fragment.type_condition.name.value)
                self.selections(target, fragment.selection_set, root)

    def field(self, parent: object, node: FieldNode, root: bool) -> None:
        name = node.name.value
        if name == "__typename":
            return
        if name.startswith("__"):
            self.restrict(0)
            return
        fields = (
            parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
        )
        definition = fields.get(name)
        if definition is None:
            self.restrict(0)  # not in a validated document
            return
        named = get_named_type(definition.type)
        composite = is_composite_type(named)
        max_age: int | None = None
        private = False
        inherit = False
        if composite:
            hint = self.type_options.get(named.name)
            if hint is not None:
                max_age, private, inherit = hint.max_age, hint.private, hint.inherit_max_age
        backref = (definition.extensions or {}).get(_BACKREF)
        if backref is not None:
            options = field_options(backref)
            if options.max_age is not None:
                max_age = options.max_age
            private = private or options.private or options.requires_auth
        if max_age is None and (root or (composite and not inherit)):
            max_age = 0
        if max_age is not None:
            self.restrict(max_age)
        if private:
            self.private = True
        if node.selection_set is not None and composite:
            self.selections(named, node.selection_set, False)


def operation_policy(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    type_options: Mapping[str, TypeOptions],
) -> CachePolicy:
    """The cache policy of a validated ``operation`` (see the module docstring)."""
    if operation.operation is not OperationType.QUERY or schema.query_type is None:
        return NOT_CACHEABLE
    walk = _Walk(schema, fragments, type_options)
    try:
        walk.selections(schema.query_type, operation.selection_set, True)
    except RecursionError:
        return NOT_CACHEABLE
    if not walk.max_age:
        return NOT_CACHEABLE
    return CachePolicy(walk.max_age, walk.private)
