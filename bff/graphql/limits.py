"""GraphQL cost control: depth, aliases, root fields and static cost, checked before execution.

An operation is analysed **once per document** (the result is kept in the prepared document's
``analysis``): its depth (the root field is depth 1, so ``{ users { items { id } } }`` is 3), its
aliases, its root fields and its static cost. Fragments, named and inline, count where they are
spread (each fragment is analysed once, however often it is spread, so a "fragment bomb" costs
linear time). Operations made only of introspection fields (``__schema``, ``__type``,
``__typename``) are exempt from every limit. Documents over ``max_tokens`` never get this far: the
parser stops them (TOKEN_LIMIT_EXCEEDED).

**Cost**, with the defaults of the IBM GraphQL Cost Directive specification:

- a field returning an object costs 1, a scalar or enum 0; a field registered with
  ``field(cost=N)`` costs N instead;
- a list multiplies the cost of its subtree (its own weight included) by its size: the value of
  its ``limit`` or ``first`` argument, or the length of its ``ids`` argument; else the
  ``list_size`` it was registered with (``field(list_size=5)``); else :data:`DEFAULT_LIST_SIZE`;
- a page (a field with a ``limit``/``first`` argument that returns an object) sizes its
  ``items``, ``nodes`` and ``edges`` lists: ``users(limit: 20) { items { id } }`` costs
  1 + 20 x 1 = 21;
- on abstract types the selections for every possible type are added (an upper bound).

Sizes may come from variables (``users(limit: $n)``): the variable-free part of the cost is
computed once and kept as a constant; what depends on variables is kept as a small expression
evaluated per request (a dictionary lookup and a multiplication per variable-sized list).

Refusals happen before anything runs, with status 400 and DEPTH_LIMIT_EXCEEDED,
ALIAS_LIMIT_EXCEEDED, ROOT_FIELD_LIMIT_EXCEEDED or COST_LIMIT_EXCEEDED (the cost in
``extensions.cost``); they are not charged to the rate limit. An admitted operation is charged
``max(1, ceil(cost / cost_per_request))`` requests (:func:`bff.ratelimit.charge`) before it runs,
and its response says so in ``extensions.cost``: ``{"requested": cost, "remaining": n}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
)
from graphql.pyutils import Undefined

from bff.asgi import Scope
from bff.error_mapping import graphql_extensions, http_status
from bff.errors import (
    AliasLimitExceeded,
    CostLimitExceeded,
    DepthLimitExceeded,
    OperationLimitExceeded,
    RootFieldLimitExceeded,
)
from bff.graphql.documents import PreparedDocument
from bff.graphql.registry import field_options
from bff.ratelimit import charge

__all__ = [
    "DEFAULT_LIST_SIZE",
    "CostControl",
    "OperationAnalysis",
    "VariableSize",
    "analyze",
    "evaluate",
]

DEFAULT_LIST_SIZE = 10
"""The size assumed for a list with no sizing argument and no declared ``list_size``."""

SLICING_ARGUMENTS = ("limit", "first")
ID_LIST_ARGUMENT = "ids"
SIZED_FIELDS = frozenset({"items", "nodes", "edges"})

_BACKREF = "strawberry-definition"
_ANALYSIS = "limits"

Response = tuple[int, dict[str, Any]]


# -- cost expressions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariableSize:
    """A list size given by variable ``name``: its integer value, the length of a list value
    (``count``), else ``fallback`` (the variable's or the argument's default, or the declared
    size)."""

    name: str
    fallback: int
    count: bool = False

    def value(self, variables: Mapping[str, Any] | None) -> int:
        if variables:
            v = variables.get(self.name)
            if self.count:
                if isinstance(v, list):
                    return len(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                return v if v > 0 else 0
        return self.fallback


@dataclass(frozen=True, slots=True)
class _Scaled:
    size: VariableSize | int
    inner: Cost


@dataclass(frozen=True, slots=True)
class _Sum:
    constant: int
    terms: tuple[_Scaled, ...]


Cost = int | _Scaled | _Sum
"""A static cost: a constant, or an expression of the request's variables."""


def _add(a: Cost, b: Cost) -> Cost:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    constant = 0
    terms: list[_Scaled] = []
    for part in (a, b):
        if isinstance(part, int):
            constant += part
        elif isinstance(part, _Sum):
            constant += part.constant
            terms.extend(part.terms)
        else:
            terms.append(part)
    return _Sum(constant, tuple(terms))


def _scale(size: VariableSize | int, inner: Cost) -> Cost:
    if isinstance(size, int):
        if size == 0 or inner == 0:
            return 0
        if isinstance(inner, int):
            return size * inner
        if size == 1:
            return inner
    elif inner == 0:
        return 0
    return _Scaled(size, inner)


def evaluate(cost: Cost, variables: Mapping[str, Any] | None) -> int:
    """The value of ``cost`` for a request's ``variables``."""
    if isinstance(cost, int):
        return cost
    if isinstance(cost, _Scaled):
        size = cost.size if isinstance(cost.size, int) else cost.size.value(variables)
        return size * evaluate(cost.inner, variables) if size else 0
    return cost.constant + sum(evaluate(t, variables) for t in cost.terms)


# -- analysis ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperationAnalysis:
    """What cost control knows of one operation of a document."""

    depth: int
    aliases: int
    root_fields: int
    cost: Cost
    introspection: bool = False


@dataclass(slots=True)
class _Summary:
    fields: int = 0
    aliases: int = 0
    depth: int = 0
    cost: Cost = 0

    def merge(self, other: _Summary) -> None:
        self.fields += other.fields
        self.aliases += other.aliases
        if other.depth > self.depth:
            self.depth = other.depth
        self.cost = _add(self.cost, other.cost)


class _Analyzer:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        defaults: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.defaults = defaults  # the operation's variable defaults (literals)
        self.memo: dict[tuple[str, VariableSize | int | None], _Summary] = {}

    def selections(
        self, parent: Any, node: SelectionSetNode, page: VariableSize | int | None
    ) -> _Summary:
        out = _Summary()
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                out.merge(self.field(parent, selection, page))
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition
                target = self.schema.get_type(cond.name.value) if cond else parent
                out.merge(self.selections(target, selection.selection_set, page))
            elif isinstance(selection, FragmentSpreadNode):
                out.merge(self.fragment(selection.name.value, page))
        return out

    def fragment(self, name: str, page: VariableSize | int | None) -> _Summary:
        key = (name, page)
        found = self.memo.get(key)
        if found is None:
            definition = self.fragments[name]
            target = self.schema.get_type(definition.type_condition.name.value)
            found = self.selections(target, definition.selection_set, page)
            self.memo[key] = found
        return found

    def field(self, parent: Any, node: FieldNode, page: VariableSize | int | None) -> _Summary:
        out = _Summary(fields=1, aliases=1 if node.alias else 0, depth=1)
        name = node.name.value
        if name.startswith("__"):
            return out  # introspection: no cost, not descended
        fields = (
            parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
        )
        definition: GraphQLField | None = fields.get(name)
        if definition is None:
            return out  # not in a validated document
        backref = (definition.extensions or {}).get(_BACKREF)
        options = field_options(backref) if backref is not None else None
        returns = get_nullable_type(definition.type)
        named = get_named_type(definition.type)
        weight = 1 if is_composite_type(named) else 0
        if options is not None and options.cost is not None:
            weight = options.cost
        is_list = is_list_type(returns)
        inner: Cost = weight
        if node.selection_set is not None:
            sizes_items = None if is_list else self.slicing_size(definition, node)
            child = self.selections(named, node.selection_set, sizes_items)
            out.aliases += child.aliases
            out.depth = 1 + child.depth
            inner = _add(weight, child.cost)
        if is_list:
            declared = options.list_size if options is not None else None
            fallback = declared if declared is not None else DEFAULT_LIST_SIZE
            size = self.slicing_size(definition, node)
            if size is None:
                size = page if (page is not None and name in SIZED_FIELDS) else fallback
            out.cost = _scale(size, inner)
        else:
            out.cost = inner
        return out

    def slicing_size(self, definition: GraphQLField, node: FieldNode) -> VariableSize | int | None:
        """The size given by a ``limit``/``first``/``ids`` argument (None: no such argument)."""
        for arg_name in (*SLICING_ARGUMENTS, ID_LIST_ARGUMENT):
            arg = definition.args.get(arg_name)
            if arg is None:
                continue
            count = arg_name == ID_LIST_ARGUMENT
            default = _size_of(arg.default_value, count)
            value = next((a.value for a in node.arguments or () if a.name.value == arg_name), None)
            if value is None:
                return default
            if isinstance(value, VariableNode):
                var = value.name.value
                fallback = _size_of(self.defaults.get(var, Undefined), count)
                if fallback is None:
                    fallback = default if default is not None else DEFAULT_LIST_SIZE
                return VariableSize(var, fallback, count)
            return _literal_size(value, count)
        return None


def _size_of(value: Any, count: bool) -> int | None:
    if value is Undefined or value is None:
        return None
    if count:
        return len(value) if isinstance(value, list | tuple) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else 0
    return None


def _literal_size(value: ValueNode, count: bool) -> int | None:
    if count:
        return len(value.values) if isinstance(value, ListValueNode) else 1
    if isinstance(value, IntValueNode):
        return max(0, int(value.value))
    return None


def _variable_defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        default = definition.default_value
        if isinstance(default, IntValueNode):
            out[definition.variable.name.value] = int(default.value)
        elif isinstance(default, ListValueNode):
            out[definition.variable.name.value] = list(default.values)
    return out


def analyze(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> OperationAnalysis:
    """Depth, aliases, root fields and cost of ``operation`` (a validated one)."""
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    analyzer = _Analyzer(schema, fragments, _variable_defaults(operation))
    summary = analyzer.selections(root, operation.selection_set, None)
    introspection = _only_introspection(operation.selection_set, fragments)
    return OperationAnalysis(
        summary.depth, summary.aliases, summary.fields, summary.cost, introspection
    )


def _only_introspection(
    node: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> bool:
    for selection in node.selections:
        if isinstance(selection, FieldNode):
            if not selection.name.value.startswith("__"):
                return False
        elif isinstance(selection, InlineFragmentNode):
            if not _only_introspection(selection.selection_set, fragments):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or not _only_introspection(fragment.selection_set, fragments):
                return False
    return True


# -- the app's gate ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    analysis: OperationAnalysis
    refusal: Response | None  # a fixed answer for a document over a static limit


def _refusal(exc: OperationLimitExceeded) -> Response:
    entry = {"message": exc.message, "extensions": graphql_extensions(exc)}
    return http_status(exc), {"errors": [entry]}


class CostControl:
    """One app's limits (``graphql.apps.<app>``): analyses operations, refuses, charges."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        max_depth: int = 10,
        max_aliases: int = 30,
        max_root_fields: int = 20,
        max_cost: int = 10_000,
        cost_per_request: int = 50,
    ) -> None:
        self.schema = schema
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_root_fields = max_root_fields
        self.max_cost = max_cost
        self.cost_per_request = cost_per_request

    @classmethod
    def for_app(cls, schema: GraphQLSchema, settings: Any) -> CostControl:
        """The cost control of an app from its ``GraphQLAppSettings``."""
        return cls(
            schema,
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_root_fields=settings.max_root_fields,
            max_cost=settings.max_cost,
            cost_per_request=settings.cost_per_request,
        )

    def verdict(self, prepared: PreparedDocument, operation: OperationDefinitionNode) -> _Verdict:
        """The analysis of ``operation`` and its static refusal, computed once per document."""
        key = (_ANALYSIS, operation.name.value if operation.name else None)
        found = prepared.analysis.get(key)
        if found is None:
            found = self._judge(prepared, operation)
            prepared.analysis[key] = found
        return found  # type: ignore[return-value]

    def _judge(self, prepared: PreparedDocument, operation: OperationDefinitionNode) -> _Verdict:
        assert prepared.document is not None
        fragments = {
            d.name.value: d
            for d in prepared.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        try:
            analysis = analyze(self.schema, operation, fragments)
        except RecursionError:
            exc = DepthLimitExceeded("the operation is nested too deeply", limit=self.max_depth)
            return _Verdict(OperationAnalysis(0, 0, 0, 0), _refusal(exc))
        refusal: OperationLimitExceeded | None = None
        # Introspection is exempt from depth and cost (tools' introspection queries are deep),
        # never from aliases or root fields: `{ a0: __schema {...} a1: __schema {...} ... }` is
        # the classic way to make a server build the same large answer thousands of times.
        if not analysis.introspection and analysis.depth > self.max_depth:
            refusal = DepthLimitExceeded(
                f"the operation has depth {analysis.depth}; this endpoint allows {self.max_depth}",
                limit=self.max_depth,
                actual=analysis.depth,
            )
        elif analysis.aliases > self.max_aliases:
            refusal = AliasLimitExceeded(
                f"the operation has {analysis.aliases} aliases; this endpoint allows "
                f"{self.max_aliases}",
                limit=self.max_aliases,
                actual=analysis.aliases,
            )
        elif analysis.root_fields > self.max_root_fields:
            refusal = RootFieldLimitExceeded(
                f"the operation has {analysis.root_fields} root fields; this endpoint allows "
                f"{self.max_root_fields}",
                limit=self.max_root_fields,
                actual=analysis.root_fields,
            )
        elif (
            not analysis.introspection
            and isinstance(analysis.cost, int)
            and analysis.cost > self.max_cost
        ):
            refusal = self._over_cost(analysis.cost)
        return _Verdict(analysis, _refusal(refusal) if refusal is not None else None)

    def _over_cost(self, cost: int) -> CostLimitExceeded:
        return CostLimitExceeded(
            f"the operation costs {cost}; this endpoint allows {self.max_cost}",
            limit=self.max_cost,
            actual=cost,
        )

    def cost(self, verdict: _Verdict, variables: Mapping[str, Any] | None) -> int:
        cost = verdict.analysis.cost
        return cost if isinstance(cost, int) else evaluate(cost, variables)

    async def guard(
        self,
        prepared: PreparedDocument,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
        scope: Scope,
        run: Callable[[], Awaitable[Response]],
        *,
        vetted: bool = False,
    ) -> Response:
        """Refuse ``operation`` if it is over a limit; else charge it and ``run`` it.

        ``vetted``: a registered operation (bff.graphql.operations), never refused by the
        limits, still charged its cost. Raises :class:`~bff.errors.RateLimited` (a 429 for the
        whole request) when the caller's quota cannot cover the cost.
        """
        verdict = self.verdict(prepared, operation)
        if verdict.refusal is not None and not vetted:
            return verdict.refusal
        cost = verdict.analysis.cost
        if not isinstance(cost, int):
            cost = evaluate(cost, variables)
            if cost > self.max_cost and not verdict.analysis.introspection and not vetted:
                return _refusal(self._over_cost(cost))
        per = self.cost_per_request
        decision = await charge(scope, 1 if cost <= per else -(-cost // per))
        status, body = await run()
        if decision is not None and not verdict.analysis.introspection:
            report = {"requested": cost, "remaining": decision.remaining}
            extensions = body.get("extensions")
            if extensions is None:
                body["extensions"] = {"cost": report}
            else:
                extensions["cost"] = report
        return status, body
