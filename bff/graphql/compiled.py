"""Compiled execution plans: a known query is not interpreted field by field.

graphql-core's executor is general: for every field of every object it collects sub-fields,
builds a ``GraphQLResolveInfo``, wraps the resolver, checks whether the result is awaitable and
dispatches on the return type. For a validated document all of that is known in advance, so it is
compiled once (what graphql-jit does for JavaScript) into a tree of :class:`FieldPlan` objects:

- a plain attribute field is one ``getattr``; a builtin scalar is serialized by a type check;
- a resolver is called directly when strawberry adds nothing to it (no arguments to convert,
  no extensions), with a strawberry ``Info`` whose raw info is built only if it is read;
- guards (``requires_auth``/``scopes``) are checked inline, from the field's options.

Execution runs in *waves*: one synchronous pass resolves everything that is ready and collects
the awaitables (loader futures, coroutines); the wave's awaitables are then awaited together and
their values completed, which starts the next wave. Every load of one level is therefore queued
before any loader dispatches, so a level costs one batch per loader whatever the timing of the
upstream answers: the latency of a query is about depth x slowest upstream.

Anything the compiler does not cover (mutations, subscriptions, directives, abstract types,
``__schema``/``__type`` introspection) is executed by graphql-core, so results never depend on
which executor ran. The test suite runs both on the same queries and compares them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import CoroutineType
from typing import Any, TypeGuard

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    default_field_resolver,
    get_argument_values,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    located_error,
)
from graphql.pyutils import Path
from strawberry.types import Info as StrawberryInfo

from bff.errors import Forbidden, Unauthenticated
from bff.graphql.registry import field_options
from bff.upstream.recorder import call_origin, reset_origin

__all__ = ["CompiledOperation", "Unsupported", "compile_operation"]

_BACKREF = "strawberry-definition"
_Future = asyncio.Future

# Field kinds.
_ATTR = 0  # getattr(source, attr)
_TYPENAME = 1  # the parent type's name
_CALL = 2  # a strawberry resolver function, called directly
_RESOLVE = 3  # a GraphQL resolve function (with a real GraphQLResolveInfo)


class Unsupported(Exception):
    """The document uses something the compiler leaves to graphql-core."""


class _Bubble(Exception):
    """A non-null position became null: the nearest nullable ancestor becomes null."""


# -- plans ----------------------------------------------------------------------------------


class _Leaf:
    __slots__ = ("coerce", "fast")

    def __init__(self, gtype: Any) -> None:
        self.coerce: Callable[[Any], Any] = gtype.coerce_output_value
        self.fast = gtype


class _ListOf:
    __slots__ = ("item", "item_nullable")

    def __init__(self, item: Any, item_nullable: bool) -> None:
        self.item = item
        self.item_nullable = item_nullable


class ObjectPlan:
    """The fields selected on one object type, in response order."""

    __slots__ = ("fields", "type_name")

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        self.fields: list[FieldPlan] = []


class FieldPlan:
    """One response key of an object: how to resolve it and how to complete its value."""

    __slots__ = (
        "args",
        "attr",
        "complete",
        "fast",
        "field_def",
        "guard_auth",
        "guard_scopes",
        "info_name",
        "key",
        "kind",
        "name",
        "nodes",
        "nullable",
        "parent_type",
        "pass_self",
        "resolve",
        "return_type",
        "sfield",
        "static_args",
    )

    key: str
    name: str
    nodes: list[FieldNode]
    kind: int
    nullable: bool
    complete: Any
    field_def: GraphQLField
    parent_type: GraphQLObjectType
    return_type: GraphQLOutputType

    def __init__(self) -> None:
        self.args: list[tuple[str, str]] = []  # (graphql name, python name) for _CALL
        self.static_args: dict[str, Any] | None = None
        self.info_name: str | None = None
        self.pass_self = False
        self.guard_auth = False
        self.guard_scopes: frozenset[str] = frozenset()
        self.attr = ""
        self.resolve: Any = None
        self.sfield: Any = None
        #: The builtin scalar type of a leaf field (String, Int, ID) for inline completion.
        self.fast: Any = None


class CompiledOperation:
    """A query operation compiled against one schema."""

    __slots__ = ("fragments", "operation", "root", "schema")

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
        root: ObjectPlan,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.root = root

    async def execute(
        self, context: Any, variables: Any, *, trace_origins: bool = False
    ) -> tuple[Any, list[GraphQLError]]:
        """Run the plan; returns ``(data, errors)`` as graphql-core would.

        ``trace_origins`` labels upstream calls with the field that made them (development
        mode's N+1 guard); it costs a context-variable write per resolver call.
        """
        run = _Run(self, context, variables)
        run.trace = trace_origins
        return await run.execute()


# -- compiling ------------------------------------------------------------------------------


def compile_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> CompiledOperation:
    """Compile a validated query operation; raises :class:`Unsupported` for what it leaves
    to graphql-core."""
    if operation.operation is not OperationType.QUERY:
        raise Unsupported("only queries are compiled")
    if operation.directives:
        raise Unsupported("operation directives")
    query_type = schema.query_type
    if query_type is None:
        raise Unsupported("no query type")
    compiler = _Compiler(schema, fragments)
    root = compiler.object_plan(query_type, [operation.selection_set])
    return CompiledOperation(schema, operation, fragments, root)


class _Compiler:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = schema
        self.fragments = fragments
        self.depth = 0

    def collect(
        self,
        otype: GraphQLObjectType,
        selection_sets: Iterable[SelectionSetNode],
        into: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection_set in selection_sets:
            for sel in selection_set.selections:
                if sel.directives:
                    raise Unsupported("directives")
                if isinstance(sel, FieldNode):
                    key = sel.alias.value if sel.alias else sel.name.value
                    into.setdefault(key, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    if sel.type_condition is None or self._applies(
                        sel.type_condition.name.value, otype
                    ):
                        self.collect(otype, [sel.selection_set], into, visited)
                elif isinstance(sel, FragmentSpreadNode):
                    name = sel.name.value
                    if name in visited:
                        continue
                    visited.add(name)
                    fragment = self.fragments.get(name)
                    if fragment is None:
                        raise Unsupported(f"unknown fragment {name}")
                    if self._applies(fragment.type_condition.name.value, otype):
                        self.collect(otype, [fragment.selection_set], into, visited)
                else:  # pragma: no cover - no other selection kinds exist
                    raise Unsupported(type(sel).__name__)

    def _applies(self, condition: str, otype: GraphQLObjectType) -> bool:
        if condition == otype.name:
            return True
        cond = self.schema.get_type(condition)
        if cond is None:
            return False
        if is_abstract_type(cond):
            return self.schema.is_sub_type(cond, otype)
        return False

    def object_plan(
        self, otype: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> ObjectPlan:
        self.depth += 1
        if self.depth > 64:
            raise Unsupported("selection too deep to compile")
        grouped: dict[str, list[FieldNode]] = {}
        self.collect(otype, selection_sets, grouped, set())
        plan = ObjectPlan(otype.name)
        for key, nodes in grouped.items():
            plan.fields.append(self.field_plan(otype, key, nodes))
        self.depth -= 1
        return plan

    def field_plan(self, otype: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldPlan:
        name = nodes[0].name.value
        fp = FieldPlan()
        fp.key = key
        fp.name = name
        fp.nodes = nodes
        fp.parent_type = otype
        if name == "__typename":
            fp.kind = _TYPENAME
            fp.nullable = False
            fp.complete = None
            fp.field_def = None  # type: ignore[assignment]
            fp.return_type = GraphQLNonNull(GraphQLString)
            return fp
        if name.startswith("__"):
            raise Unsupported("introspection")
        field_def: GraphQLField | None = otype.fields.get(name)
        if field_def is None:
            raise Unsupported(f"unknown field {otype.name}.{name}")
        fp.field_def = field_def
        fp.return_type = field_def.type
        fp.nullable = not is_non_null_type(field_def.type)
        fp.complete = self.completer(field_def.type, nodes)
        if type(fp.complete) is _Leaf and fp.complete.fast in (
            GraphQLString,
            GraphQLInt,
            GraphQLID,
        ):
            fp.fast = fp.complete.fast
        self._arguments(fp, field_def, nodes[0])
        self._resolver(fp, field_def)
        return fp

    def _arguments(self, fp: FieldPlan, field_def: GraphQLField, node: FieldNode) -> None:
        if not field_def.args:
            fp.static_args = {}
            return
        if not _uses_variables(node):
            # Literals and defaults only: coerced once, at compile time.
            fp.static_args = get_argument_values(field_def, node, None)

    def _resolver(self, fp: FieldPlan, field_def: GraphQLField) -> None:
        sfield = (field_def.extensions or {}).get(_BACKREF)
        fp.sfield = sfield
        resolve = field_def.resolve
        if sfield is not None:
            opts = field_options(sfield)
            fp.guard_auth = opts.requires_auth
            fp.guard_scopes = opts.scopes
            # The gateway's guard wrapper is replaced by the inline check.
            resolve = getattr(resolve, "__wrapped__", resolve)
            plain = not sfield.extensions and not getattr(sfield, "permission_classes", None)
            if sfield.base_resolver is None and plain:
                fp.kind = _ATTR
                fp.attr = sfield.python_name
                return
            resolver = sfield.base_resolver
            if resolver is not None and plain and self._simple_args(fp, field_def):
                fp.kind = _CALL
                fp.resolve = resolver.wrapped_func
                fp.pass_self = resolver.self_parameter is not None
                if resolver.parent_parameter is not None or resolver.root_parameter is not None:
                    fp.kind = _RESOLVE
                    fp.resolve = resolve
                    return
                info = resolver.info_parameter
                fp.info_name = info.name if info is not None else None
                return
        fp.kind = _RESOLVE
        fp.resolve = resolve or default_field_resolver

    def _simple_args(self, fp: FieldPlan, field_def: GraphQLField) -> bool:
        """True when every argument is a builtin scalar (strawberry would not convert it)."""
        for gname, arg in field_def.args.items():
            inner = arg.type.of_type if is_non_null_type(arg.type) else arg.type
            if inner not in (GraphQLInt, GraphQLFloat, GraphQLString, GraphQLBoolean, GraphQLID):
                return False
            sarg = (arg.extensions or {}).get(_BACKREF)
            if sarg is None:
                return False
            fp.args.append((gname, sarg.python_name))
        return True

    def completer(self, gtype: GraphQLOutputType, nodes: list[FieldNode]) -> Any:
        if is_non_null_type(gtype):
            gtype = gtype.of_type
        if is_leaf_type(gtype):
            return _Leaf(gtype)
        if is_list_type(gtype):
            item = gtype.of_type
            return _ListOf(self.completer(item, nodes), not is_non_null_type(item))
        if is_object_type(gtype):
            subs = [n.selection_set for n in nodes if n.selection_set is not None]
            return self.object_plan(gtype, subs)
        raise Unsupported(f"abstract type {gtype}")


def _uses_variables(node: FieldNode) -> bool:
    return any(_has_variable(arg.value) for arg in node.arguments or ())


def _has_variable(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_has_variable(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_has_variable(f.value) for f in value.fields)
    return False


# -- running --------------------------------------------------------------------------------


class _LazyRawInfo:
    """Stands in for ``GraphQLResolveInfo`` inside a strawberry ``Info``: ``context`` is
    direct; reading anything else builds the real info once."""

    __slots__ = ("_build", "_real", "context")

    def __init__(self, context: Any, build: Callable[[], GraphQLResolveInfo]) -> None:
        self.context = context
        self._build = build
        self._real: GraphQLResolveInfo | None = None

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            self._real = self._build()
        return getattr(self._real, name)


# A pending value: (awaitable, field plan or None for a list item, path, container, key,
# nullable, slot of the container, list completer for items).
_Pending = tuple[Any, Any, Any, Any, Any, bool, Any, Any]


class _Run:
    __slots__ = (
        "compiled",
        "context",
        "data",
        "errors",
        "nulled",
        "pending",
        "principal",
        "stale",
        "trace",
        "variables",
    )

    def __init__(self, compiled: CompiledOperation, context: Any, variables: Any) -> None:
        self.compiled = compiled
        self.context = context
        self.principal = getattr(context, "principal", None)
        #: Values loaders served from a stale fallback (by id); filled while this runs.
        self.stale: dict[int, Any] | None = getattr(context, "stale", None)
        self.variables = variables
        self.errors: list[GraphQLError] = []
        self.pending: list[_Pending] = []
        self.data: Any = None
        self.trace = False
        #: Set once a value was replaced by null because of an error: only then can a pending
        #: value belong to a detached subtree.
        self.nulled = False

    async def execute(self) -> tuple[Any, list[GraphQLError]]:
        root_slot = ("root",)
        try:
            self.data = self.complete_object(self.compiled.root, None, None, root_slot)
        except _Bubble:
            return None, self.errors
        while self.pending:
            wave, self.pending = self.pending, []
            values: list[Any] = []
            for entry in wave:
                try:
                    values.append(await entry[0])
                except Exception as exc:
                    values.append(_Failed(exc))
            for entry, value in zip(wave, values, strict=True):
                self.settle(entry, value)
        return self.data, self.errors

    # -- objects and fields -------------------------------------------------------------
    # Paths are plain tuples (parent, key, type name), made into graphql-core ``Path``
    # objects only for errors and resolver infos.

    def complete_object(
        self, plan: ObjectPlan, source: Any, path: Any, slot: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        type_name = plan.type_name
        stale = self.stale
        if stale and id(source) in stale:
            self.context.stale_at(_path_list(path))
        for fp in plan.fields:
            kind = fp.kind
            key = fp.key
            if kind == _ATTR:
                try:
                    value = getattr(source, fp.attr)
                except Exception as exc:
                    self.fail(exc, fp, (path, key, type_name), result, slot)
                    continue
            elif kind == _TYPENAME:
                result[key] = type_name
                continue
            else:
                fpath = (path, key, type_name)
                origin = call_origin(f"{type_name}.{fp.name}") if self.trace else None
                try:
                    value = self.call(fp, source, fpath)
                    if type(value) is CoroutineType:
                        # Started now, so the task copies the context (origin label included).
                        value = asyncio.ensure_future(value)
                except Exception as exc:
                    self.fail(exc, fp, fpath, result, slot)
                    continue
                finally:
                    if origin is not None:
                        reset_origin(origin)
                if isinstance(value, _Future) or (
                    value is not None and hasattr(value, "__await__")
                ):
                    result[key] = None
                    self.pending.append((value, fp, fpath, result, key, fp.nullable, slot, None))
                    continue
            # Leaves of the builtin scalar types, inline: most fields of most responses.
            fast = fp.fast
            if fast is not None:
                vtype = type(value)
                if fast is GraphQLString:
                    if vtype is str:
                        result[key] = value
                        continue
                elif fast is GraphQLInt:
                    if vtype is int and -2147483648 <= value <= 2147483647:
                        result[key] = value
                        continue
                elif fast is GraphQLID:
                    if vtype is str:
                        result[key] = value
                        continue
                    if vtype is int:
                        result[key] = str(value)
                        continue
            result[key] = self.complete_field(fp, value, path, type_name, result, slot)
        return result

    def complete_field(
        self, fp: FieldPlan, value: Any, path: Any, type_name: str, result: Any, slot: Any
    ) -> Any:
        if value is None:
            if fp.nullable:
                return None
            self.error(
                GraphQLError(f"Cannot return null for non-nullable field {type_name}.{fp.name}."),
                fp,
                (path, fp.key, type_name),
            )
            raise _Bubble
        complete = fp.complete
        fpath = (path, fp.key, type_name)
        try:
            if type(complete) is _Leaf:
                return _leaf(complete, value)
            if type(complete) is ObjectPlan:
                return self.complete_object(
                    complete, value, fpath, (result, fp.key, fp.nullable, slot)
                )
            return self.complete_list(
                complete, value, fpath, (result, fp.key, fp.nullable, slot), fp
            )
        except _Bubble:
            if fp.nullable:
                self.nulled = True
                return None
            raise
        except Exception as exc:
            self.error(exc, fp, fpath)
            if fp.nullable:
                self.nulled = True
                return None
            raise _Bubble from None

    def complete_list(
        self, spec: _ListOf, value: Any, path: Any, slot: Any, fp: FieldPlan
    ) -> list[Any]:
        if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
            raise TypeError(
                f"Expected Iterable, but did not find one for field "
                f"{fp.parent_type.name}.{fp.name}."
            )
        item = spec.item
        if type(item) is ObjectPlan:
            nullable = spec.item_nullable
            out: list[Any] = []
            append = out.append
            for index, element in enumerate(value):
                if (
                    element is None
                    or isinstance(element, _Future)
                    or type(element) is CoroutineType
                ):
                    append(self.complete_item(spec, element, path, index, out, slot, fp))
                    continue
                try:
                    append(
                        self.complete_object(
                            item, element, (path, index, None), (out, index, nullable, slot)
                        )
                    )
                except _Bubble:
                    if not nullable:
                        raise
                    self.nulled = True
                    append(None)
            return out
        out = []
        for index, element in enumerate(value):
            out.append(self.complete_item(spec, element, path, index, out, slot, fp))
        return out

    def complete_item(
        self,
        spec: _ListOf,
        element: Any,
        path: Any,
        index: int,
        out: list[Any] | None,
        slot: Any,
        fp: FieldPlan,
    ) -> Any:
        ipath = (path, index, None)
        if element is not None and (isinstance(element, _Future) or type(element) is CoroutineType):
            if type(element) is CoroutineType:
                element = asyncio.ensure_future(element)
            if out is None:
                raise TypeError("awaitable list items need a list to settle into")
            self.pending.append((element, fp, ipath, out, index, spec.item_nullable, slot, spec))
            return None
        if element is None:
            if spec.item_nullable:
                return None
            self.error(
                GraphQLError(
                    f"Cannot return null for non-nullable field {fp.parent_type.name}.{fp.name}."
                ),
                fp,
                ipath,
            )
            raise _Bubble
        item = spec.item
        item_slot = (out, index, spec.item_nullable, slot)
        try:
            if type(item) is _Leaf:
                return _leaf(item, element)
            if type(item) is ObjectPlan:
                return self.complete_object(item, element, ipath, item_slot)
            return self.complete_list(item, element, ipath, item_slot, fp)
        except _Bubble:
            if spec.item_nullable:
                self.nulled = True
                return None
            raise
        except Exception as exc:
            self.error(exc, fp, ipath)
            if spec.item_nullable:
                self.nulled = True
                return None
            raise _Bubble from None

    def call(self, fp: FieldPlan, source: Any, path: Any) -> Any:
        if fp.guard_auth:
            self.check_guard(fp)
        if fp.kind == _CALL:
            if fp.args:
                args = fp.static_args
                if args is None:
                    args = get_argument_values(fp.field_def, fp.nodes[0], self.variables)
                kwargs = {py: args[g] for g, py in fp.args if g in args}
            else:
                kwargs = {}
            if fp.info_name is not None:
                kwargs[fp.info_name] = StrawberryInfo(
                    _raw_info=_LazyRawInfo(  # type: ignore[arg-type]
                        self.context, lambda: self.resolve_info(fp, path)
                    ),
                    _field=fp.sfield,
                )
            if fp.pass_self:
                return fp.resolve(source, **kwargs)
            return fp.resolve(**kwargs)
        args = fp.static_args
        if args is None:
            args = get_argument_values(fp.field_def, fp.nodes[0], self.variables)
        return fp.resolve(source, self.resolve_info(fp, path), **args)

    def check_guard(self, fp: FieldPlan) -> None:
        principal = self.principal
        if principal is None or not principal.is_authenticated:
            raise Unauthenticated("this field requires authentication")
        if fp.guard_scopes and not principal.has_scopes(fp.guard_scopes):
            missing = ", ".join(sorted(s for s in fp.guard_scopes if s not in principal.scopes))
            raise Forbidden(f"missing scope: {missing}")

    def resolve_info(self, fp: FieldPlan, path: Any) -> GraphQLResolveInfo:
        c = self.compiled
        return GraphQLResolveInfo(
            fp.name,
            fp.nodes,
            fp.return_type,
            fp.parent_type,
            _as_path(path),  # type: ignore[arg-type]
            c.schema,
            c.fragments,
            None,
            c.operation,
            self.variables,
            self.context,
            _is_awaitable,
            None,
            _HELPERS,
        )

    # -- settling awaited values ------------------------------------------------------------

    def settle(self, entry: _Pending, value: Any) -> None:
        _, fp, path, container, key, nullable, slot, spec = entry
        if self.nulled and not self.attached(container, slot):
            return
        try:
            if type(value) is _Failed:
                self.error(value.exc, fp, path)
                raise _Bubble
            if spec is None:
                container[key] = self.complete_field(
                    fp, value, path[0], path[2] or "", container, slot
                )
            else:
                container[key] = self.complete_item(spec, value, path[0], key, container, slot, fp)
        except _Bubble:
            self.nulled = True
            if nullable:
                container[key] = None
            else:
                self.bubble(slot)

    def bubble(self, slot: Any) -> None:
        """Null the nearest nullable ancestor of ``slot`` (the response's data at the top)."""
        while True:
            if slot[0] == "root":
                self.data = None
                return
            container, key, nullable, parent = slot
            container[key] = None
            if nullable:
                return
            slot = parent

    def attached(self, container: Any, slot: Any) -> bool:
        """Whether ``container`` (held at ``slot``) is still part of the response.

        An ancestor nulled after a value was scheduled detaches its subtree; the value would
        land nowhere, and its errors are dropped as graphql-js drops them.
        """
        while slot[0] != "root":
            parent_container, key, _, parent = slot
            if parent_container is None or parent_container[key] is not container:
                return False
            container, slot = parent_container, parent
        return self.data is container

    # -- errors ---------------------------------------------------------------------------

    def fail(self, exc: Exception, fp: FieldPlan, path: Any, result: Any, slot: Any) -> None:
        self.error(exc, fp, path)
        if fp.nullable:
            result[fp.key] = None
            return
        raise _Bubble

    def error(self, exc: Exception, fp: FieldPlan | None, path: Any) -> None:
        nodes = fp.nodes if fp is not None else None
        self.errors.append(located_error(exc, nodes, _path_list(path)))


def _as_path(path: Any) -> Path | None:
    if path is None:
        return None
    return Path(_as_path(path[0]), path[1], path[2])


def _path_list(path: Any) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return keys


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


async def _gather(values: Sequence[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*values))


_tracked: set[asyncio.Future[Any]] = set()


def _track(values: Sequence[Any]) -> None:
    for value in values:
        if isinstance(value, CoroutineType):
            task = asyncio.ensure_future(value)
            _tracked.add(task)
            task.add_done_callback(_tracked.discard)


_HELPERS = GraphQLResolveInfoHelpers(gather=_gather, track=_track)


def _is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    return isinstance(value, _Future) or type(value) is CoroutineType or hasattr(value, "__await__")


def _leaf(leaf: _Leaf, value: Any) -> Any:
    fast = leaf.fast
    vtype = type(value)
    if fast is GraphQLString:
        if vtype is str:
            return value
    elif fast is GraphQLInt:
        if vtype is int and -2147483648 <= value <= 2147483647:
            return value
    elif fast is GraphQLID:
        if vtype is str:
            return value
        if vtype is int:
            return str(value)
    elif fast is GraphQLBoolean:
        if vtype is bool:
            return value
    elif (
        fast is GraphQLFloat
        and vtype is float
        and value == value
        and value
        not in (
            float("inf"),
            float("-inf"),
        )
    ):
        return value
    coerced = leaf.coerce(value)
    if coerced is None:
        raise TypeError(f"Expected a value of type {fast}, got {value!r}")
    return coerced
