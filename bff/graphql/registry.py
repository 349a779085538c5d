"""The registry: how backend teams declare types, fields and loaders.

A team writes one module in ``schema/`` holding a :class:`SchemaModule`::

    module = SchemaModule(__name__)

    @module.type
    class Product:
        id: strawberry.ID
        name: str
        description: str = field(frontends=["web"])

    @module.query(frontends=["web", "mobile"])
    def product(info: Info, id: strawberry.ID) -> Product | None:
        return info.context.loader("products").load(int(id))

and lists the module in ``graphql.schema_modules``. The engine imports the modules by name,
merges them into one :class:`Registry` (rejecting duplicates, naming both modules), and projects
one schema per frontend from it (:mod:`bff.graphql.projection`). Every field is declared once and
tagged with the frontends that see it (default: all).
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import importlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry
from strawberry.schema.name_converter import NameConverter
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
)
from strawberry.types.field import UNRESOLVED, StrawberryField

from bff.upstream.batch import RestBatch

if TYPE_CHECKING:
    from bff.graphql.context import Context

__all__ = [
    "FIELD_OPTIONS_KEY",
    "FieldOptions",
    "LoaderSpec",
    "Registry",
    "RegistryError",
    "SchemaModule",
    "TypeOptions",
    "field",
    "field_options",
]

FIELD_OPTIONS_KEY = "bff"
_MISSING: Any = dataclasses.MISSING
_names = NameConverter(auto_camel_case=True)

T = TypeVar("T")
BatchFunction = Callable[["Context", list[Any]], Awaitable[Sequence[Any]]]


class RegistryError(Exception):
    """A schema module declared something the engine cannot build (raised at start-up)."""


@dataclass(frozen=True, slots=True)
class FieldOptions:
    """What the engine needs to know about a field beyond its GraphQL shape.

    ``frontends``: the apps that see the field (``None``: all). ``requires_auth`` and ``scopes``:
    checked before the resolver runs; failing them errors this field only. ``list_size`` and
    ``cost``: static cost analysis (a list field multiplies its subtree by its ``limit``/``first``
    /``ids`` argument, else by ``list_size``). ``max_age``/``private``: cache hints.
    """

    frontends: frozenset[str] | None = None
    requires_auth: bool = False
    scopes: frozenset[str] = frozenset()
    list_size: int | None = None
    cost: int | None = None
    max_age: int | None = None
    private: bool = False

    def visible_to(self, frontend: str) -> bool:
        return self.frontends is None or frontend in self.frontends


@dataclass(frozen=True, slots=True)
class TypeOptions:
    """Options of a registered object type: the cache hint of the fields returning it.

    ``inherit_max_age``: a value type (``Money``) as fresh as the object holding it, never
    restricting the response by itself (Apollo's ``inheritMaxAge``).
    """

    max_age: int | None = None
    private: bool = False
    inherit_max_age: bool = False


_DEFAULT_OPTIONS = FieldOptions()


def field_options(f: StrawberryField) -> FieldOptions:
    """The :class:`FieldOptions` a field was declared with (defaults when declared plainly)."""
    meta = f.metadata
    if meta:
        opts = meta.get(FIELD_OPTIONS_KEY)
        if opts is not None:
            return opts
    return _DEFAULT_OPTIONS


def field(
    resolver: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    frontends: Iterable[str] | None = None,
    requires_auth: bool = False,
    scopes: Iterable[str] = (),
    list_size: int | None = None,
    cost: int | None = None,
    max_age: int | None = None,
    private: bool = False,
    deprecation_reason: str | None = None,
    default: Any = _MISSING,
    default_factory: Any = _MISSING,
) -> Any:
    """Declare a field: ``strawberry.field`` plus the engine's options (see :class:`FieldOptions`).

    Usable as an attribute default (``email: str = field(frontends=["web"])``) or as a method
    decorator (``@field(frontends=["mobile"], name="imageUrl")``).
    """
    opts = FieldOptions(
        frontends=frozenset(frontends) if frontends is not None else None,
        requires_auth=requires_auth or bool(scopes),
        scopes=frozenset(scopes),
        list_size=list_size,
        cost=cost,
        max_age=max_age,
        private=private,
    )
    kwargs: dict[str, Any] = {
        "name": name,
        "description": description,
        "deprecation_reason": deprecation_reason,
        "metadata": {FIELD_OPTIONS_KEY: opts},
    }
    if default is not _MISSING:
        kwargs["default"] = default
    if default_factory is not _MISSING:
        kwargs["default_factory"] = default_factory
    if resolver is not None:
        return strawberry.field(resolver=resolver, **kwargs)
    return strawberry.field(**kwargs)


@dataclass(frozen=True)
class LoaderSpec:
    """A batch loader, declared once and instantiated per request.

    ``batch(ctx, keys)`` returns one value per key, in the order of ``keys`` (``None`` or an
    exception for a key it could not load). ``max_batch_size`` splits a larger batch into
    chunks that run concurrently.

    Values kept across requests (:mod:`bff.graphql.loader_cache`) are stored as JSON, so a
    loader using either option below returns JSON values from ``batch`` and, if resolvers want
    typed values, names ``parse`` (JSON value -> typed value), applied to fresh and cached values
    alike (``rest_loader`` does this by itself):

    - ``stale_if_error``: seconds for which the last good value of a key is served when the
      upstream fails (field fallbacks; the response lists the paths in ``extensions.degraded``);
    - ``shared_ttl``: seconds for which a loaded value serves every request (a short shared
      cache of entity fetches); only for values that do not depend on the caller.
    """

    name: str
    batch: BatchFunction
    module: str
    max_batch_size: int | None = 100
    stale_if_error: float | None = None
    shared_ttl: float | None = None
    parse: Callable[[Any], Any] | None = None

    @property
    def cached(self) -> bool:
        """True when values outlive the request (``stale_if_error`` or ``shared_ttl``)."""
        return bool(self.stale_if_error or self.shared_ttl)


@dataclass
class _Declared:
    """A field attached by a module to a type (or a root), with where it came from."""

    field: StrawberryField
    module: str


class SchemaModule:
    """The declarations of one backend team's module (see the module docstring)."""

    def __init__(self, name: str, *, requires: Iterable[SchemaModule] = ()) -> None:
        self.name = name
        #: Modules whose declarations this one builds on (merged first, once).
        self.requires = tuple(requires)
        self.types: list[builtins.type] = []
        self.type_options: dict[builtins.type, TypeOptions] = {}
        self.extensions: list[tuple[builtins.type, builtins.type]] = []
        self.queries: list[StrawberryField] = []
        self.mutations: list[StrawberryField] = []
        self.loaders: list[LoaderSpec] = []
        self.scalars: dict[Any, Any] = {}

    # -- types -------------------------------------------------------------------------------

    def type(
        self,
        cls: builtins.type[T] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        max_age: int | None = None,
        private: bool = False,
        inherit_max_age: bool = False,
    ) -> Any:
        """Declare an object type (``strawberry.type`` underneath); ``max_age``, ``private``
        and ``inherit_max_age``: its cache hint (:class:`TypeOptions`)."""

        def wrap(c: builtins.type[T]) -> builtins.type[T]:
            out = strawberry.type(c, name=name, description=description)
            self.types.append(out)
            if max_age is not None or private or inherit_max_age:
                self.type_options[out] = TypeOptions(max_age, private, inherit_max_age)
            return out

        return wrap(cls) if cls is not None else wrap

    def input(
        self,
        cls: builtins.type[T] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Any:
        """Declare an input type (``strawberry.input`` underneath)."""

        def wrap(c: builtins.type[T]) -> builtins.type[T]:
            out = strawberry.input(c, name=name, description=description)
            self.types.append(out)
            return out

        return wrap(cls) if cls is not None else wrap

    def enum(
        self,
        cls: builtins.type[T] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Any:
        """Declare an enum (``strawberry.enum`` underneath)."""

        def wrap(c: builtins.type[T]) -> builtins.type[T]:
            out = strawberry.enum(c, name=name, description=description)  # type: ignore[call-overload]
            self.types.append(out)
            return out

        return wrap(cls) if cls is not None else wrap

    def scalar(
        self,
        python_type: T,
        *,
        name: str,
        serialize: Callable[[Any], Any],
        parse_value: Callable[[Any], Any],
        description: str | None = None,
    ) -> T:
        """Register a custom scalar: fields annotated with ``python_type`` (typically a
        ``NewType``) are the GraphQL scalar ``name``."""
        self.scalars[python_type] = strawberry.scalar(
            name=name, description=description, serialize=serialize, parse_value=parse_value
        )
        return python_type

    def extend(self, target: builtins.type) -> Callable[[builtins.type[T]], builtins.type[T]]:
        """Add the fields of the decorated class to ``target``, a type another module owns.

        This is how the orders team gives ``User`` an ``orders`` field without touching the
        users module.
        """

        def wrap(c: builtins.type[T]) -> builtins.type[T]:
            out = strawberry.type(c)
            self.extensions.append((target, out))
            return out

        return wrap

    # -- roots ---------------------------------------------------------------------------------

    def query(self, resolver: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Declare a root ``Query`` field; takes the options of :func:`field`."""
        return self._root(self.queries, resolver, options)

    def mutation(self, resolver: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Declare a root ``Mutation`` field; takes the options of :func:`field`."""
        return self._root(self.mutations, resolver, options)

    def _root(
        self,
        into: list[StrawberryField],
        resolver: Callable[..., Any] | None,
        options: dict[str, Any],
    ) -> Any:
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            f = field(fn, **options)
            if f.graphql_name is None:
                f.graphql_name = _names.apply_naming_config(fn.__name__)
            into.append(f)
            return fn

        return wrap(resolver) if resolver is not None else wrap

    # -- loaders -------------------------------------------------------------------------------

    def loader(
        self,
        name: str,
        *,
        max_batch_size: int | None = 100,
        stale_if_error: float | None = None,
        shared_ttl: float | None = None,
        parse: Callable[[Any], Any] | None = None,
    ) -> Callable[[BatchFunction], BatchFunction]:
        """Declare a batch loader: ``async def batch(ctx, keys) -> list[value | None]``
        (see :class:`LoaderSpec` for ``stale_if_error``, ``shared_ttl`` and ``parse``)."""

        def wrap(fn: BatchFunction) -> BatchFunction:
            self.add_loader(
                LoaderSpec(
                    name=name,
                    batch=fn,
                    module=self.name,
                    max_batch_size=max_batch_size,
                    stale_if_error=stale_if_error,
                    shared_ttl=shared_ttl,
                    parse=parse,
                )
            )
            return fn

        return wrap

    def rest_loader(
        self,
        name: str,
        source: RestBatch[Any, Any] | None = None,
        *,
        upstream: str,
        stale_if_error: float | None = None,
        shared_ttl: float | None = None,
        **source_options: Any,
    ) -> LoaderSpec:
        """Declare a loader over a REST batch endpoint in a few lines.

        Pass a ready :class:`~bff.upstream.RestBatch` (as the typed clients define them) or its
        options (``path``, ``key_param``, ``key_field``, ``many``, ``max_batch_size``,
        ``parse``). Results are matched by key; a failed chunk fails only its keys.
        ``stale_if_error`` and ``shared_ttl``: see :class:`LoaderSpec`.
        """
        src = source if source is not None else RestBatch(**source_options)
        parse = None
        if stale_if_error or shared_ttl:
            # Values outlive the request as JSON: fetch the raw items, parse them afterwards.
            parse = _parse_items(src.parse, many=src.many) if src.parse is not None else None
            src = copy.copy(src)
            src.parse = None

        async def batch(ctx: Context, keys: list[Any]) -> Sequence[Any]:
            return await src.fetch_partial(ctx.upstreams[upstream], keys)

        # The source chunks (concurrently) at its own limit, so the loader hands it every key.
        return self.add_loader(
            LoaderSpec(
                name=name,
                batch=batch,
                module=self.name,
                max_batch_size=None,
                stale_if_error=stale_if_error,
                shared_ttl=shared_ttl,
                parse=parse,
            )
        )

    def add_loader(self, spec: LoaderSpec) -> LoaderSpec:
        """Register a ready :class:`LoaderSpec` (e.g. one made by ``rest_loader``)."""
        self.loaders.append(spec)
        return spec


def _parse_items(parse: Callable[[Any], Any], *, many: bool) -> Callable[[Any], Any]:
    if many:
        return lambda items: [parse(item) for item in items]
    return parse


# -- the merged registry -------------------------------------------------------------------------


def _type_name(t: Any) -> str | None:
    definition = getattr(t, "__strawberry_definition__", None)
    if definition is not None:
        return str(definition.name)
    scalar = getattr(t, "_scalar_definition", None)
    if scalar is not None:
        return str(scalar.name)
    return None


_BUILTIN_SCALARS = (str, int, float, bool, strawberry.ID)


class Registry:
    """Every module's declarations, merged and checked; frozen once schemas are built."""

    def __init__(self) -> None:
        self.modules: list[str] = []
        self._added: set[int] = set()
        self._types: dict[str, tuple[type, str]] = {}
        self.type_options: dict[str, TypeOptions] = {}
        self._extensions: dict[str, list[_Declared]] = {}
        self._own_fields: dict[str, dict[str, list[_Declared]]] = {}
        self.queries: list[_Declared] = []
        self.mutations: list[_Declared] = []
        self.loaders: dict[str, LoaderSpec] = {}
        #: Custom scalars by Python type, for strawberry's ``scalar_map``.
        self.scalars: dict[Any, Any] = {}
        self.frozen = False

    @classmethod
    def from_module_names(cls, names: Sequence[str]) -> Registry:
        """Import each named module and merge the :class:`SchemaModule` objects it holds."""
        registry = cls()
        for modname in names:
            try:
                pymod = importlib.import_module(modname)
            except ImportError as exc:
                raise RegistryError(f"schema module {modname!r} cannot be imported: {exc}") from exc
            found = [
                v for v in vars(pymod).values() if isinstance(v, SchemaModule) and v.name == modname
            ]
            if not found:
                raise RegistryError(
                    f"schema module {modname!r} defines no SchemaModule "
                    "(expected e.g. `module = SchemaModule(__name__)`)"
                )
            for sm in found:
                registry.add(sm)
        return registry

    @classmethod
    def from_modules(cls, modules: Iterable[SchemaModule]) -> Registry:
        registry = cls()
        for sm in modules:
            registry.add(sm)
        return registry

    # -- merging ---------------------------------------------------------------------------

    def add(self, module: SchemaModule) -> None:
        """Merge one module's declarations; duplicates raise :class:`RegistryError`."""
        if id(module) in self._added:
            return
        for required in module.requires:
            self.add(required)
        if self.frozen:
            raise RegistryError(
                f"cannot add schema module {module.name!r}: the registry is frozen "
                "(schemas were already built)"
            )
        self._added.add(id(module))
        self.modules.append(module.name)
        for t in module.types:
            tname = _type_name(t)
            if tname is None:
                raise RegistryError(f"{module.name}: {t!r} is not a strawberry type or scalar")
            if tname in self._types and self._types[tname][0] is not t:
                other = self._types[tname][1]
                raise RegistryError(
                    f"type {tname!r} is registered twice: in {other} and in {module.name}"
                )
            self._types[tname] = (t, module.name)
            definition = getattr(t, "__strawberry_definition__", None)
            if isinstance(definition, StrawberryObjectDefinition):
                for f in definition.fields:
                    self._claim(tname, f, module.name)
        for python_type, definition in module.scalars.items():
            prior = self.scalars.get(python_type)
            if prior is not None and prior is not definition:
                raise RegistryError(
                    f"scalar {definition.name!r} is registered twice (again in {module.name})"
                )
            self.scalars[python_type] = definition
        for t, opts in module.type_options.items():
            self.type_options[_type_name(t) or ""] = opts
        for target, ext in module.extensions:
            tname = _type_name(target)
            if tname is None:
                raise RegistryError(
                    f"{module.name}: cannot extend {target!r}: not a strawberry type"
                )
            for f in ext.__strawberry_definition__.fields:  # type: ignore[attr-defined]
                self._claim(tname, f, module.name)
                self._extensions.setdefault(tname, []).append(_Declared(f, module.name))
        for f in module.queries:
            self._claim("Query", f, module.name)
            self.queries.append(_Declared(f, module.name))
        for f in module.mutations:
            self._claim("Mutation", f, module.name)
            self.mutations.append(_Declared(f, module.name))
        for spec in module.loaders:
            if spec.name in self.loaders:
                raise RegistryError(
                    f"loader {spec.name!r} is declared twice: in {self.loaders[spec.name].module} "
                    f"and in {module.name}"
                )
            self.loaders[spec.name] = spec

    def _claim(self, type_name: str, f: StrawberryField, module: str) -> None:
        gql = f.graphql_name or _names.apply_naming_config(f.python_name)
        opts = field_options(f)
        claims = self._own_fields.setdefault(type_name, {}).setdefault(gql, [])
        for prior in claims:
            if prior.field is f:
                return
            prior_opts = field_options(prior.field)
            if _overlap(prior_opts.frontends, opts.frontends):
                where = (
                    f"twice in {module}"
                    if prior.module == module
                    else f"in {prior.module} and in {module}"
                )
                raise RegistryError(
                    f"field {type_name}.{gql} is registered {where} "
                    f"for the same frontend(s) {_fmt(prior_opts.frontends, opts.frontends)}"
                )
        claims.append(_Declared(f, module))

    # -- reading ---------------------------------------------------------------------------

    def extensions_for(self, type_name: str) -> list[StrawberryField]:
        """Fields other modules added to ``type_name``."""
        return [d.field for d in self._extensions.get(type_name, ())]

    def types(self) -> list[type]:
        return [t for t, _ in self._types.values()]

    def frontends(self) -> set[str]:
        """Every frontend named by some field's ``frontends`` tag."""
        seen: set[str] = set()
        for fields in self._own_fields.values():
            for decls in fields.values():
                for d in decls:
                    fe = field_options(d.field).frontends
                    if fe:
                        seen |= fe
        return seen

    def freeze(self) -> None:
        """Check every field's type is registered; no more modules may be added after this."""
        if self.frozen:
            return
        problems: list[str] = []
        for tname, fields in self._own_fields.items():
            for gql, decls in fields.items():
                for d in decls:
                    try:
                        inner = _innermost(d.field.type)
                    except Exception as exc:  # an unresolvable forward reference
                        problems.append(f"field {tname}.{gql} ({d.module}): {exc}")
                        continue
                    if inner is UNRESOLVED:
                        problems.append(
                            f"field {tname}.{gql} ({d.module}): its type cannot be resolved "
                            "(declare types at module level, not inside a function)"
                        )
                        continue
                    if inner in _BUILTIN_SCALARS or not _is_named(inner):
                        continue
                    iname = _type_name(inner)
                    if iname is None or iname not in self._types:
                        problems.append(
                            f"field {tname}.{gql} ({d.module}) returns {iname or inner!r}, "
                            "which no schema module registers"
                        )
                    for arg in d.field.arguments:
                        ainner = _innermost(arg.type)
                        aname = _type_name(ainner)
                        if aname is not None and aname not in self._types:
                            problems.append(
                                f"argument {tname}.{gql}({arg.python_name}:) ({d.module}) "
                                f"has type {aname!r}, which no schema module registers"
                            )
        if problems:
            raise RegistryError("; ".join(problems))
        self.frozen = True


def _innermost(t: Any) -> Any:
    while isinstance(t, StrawberryOptional | StrawberryList):
        t = t.of_type
    return t


def _is_named(t: Any) -> bool:
    return (
        hasattr(t, "__strawberry_definition__")
        or hasattr(t, "_scalar_definition")
        or (isinstance(t, type) and issubclass(t, Enum))
    )


def _overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    if a is None or b is None:
        return True
    return bool(a & b)


def _fmt(a: frozenset[str] | None, b: frozenset[str] | None) -> str:
    if a is None and b is None:
        return "(all)"
    if a is None:
        return ", ".join(sorted(b or ()))
    if b is None:
        return ", ".join(sorted(a))
    return ", ".join(sorted(a & b))
