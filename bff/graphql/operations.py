"""Registered operations: the allow-list of ``persisted_queries: only`` apps.

An operation is registered (``bff persisted add FILE.graphql --app iot``) in the store
(:class:`~bff.store.PersistedOperationRepository`) under the SHA-256 of its text. Each gateway
process keeps every registered operation in memory (:class:`OperationCatalogue`): loaded at
start-up, then refreshed when the store's fingerprint changes (polled every
``store.poll_interval`` seconds), so a request never waits on the store.

:func:`vet` is what registration runs first: the document must validate against the app's
schema, and each operation is measured against the app's depth, alias, root-field and cost
limits. Over a limit is a warning, not a refusal: a registered operation was vetted by whoever
registered it, and it skips the per-request checks (an admin may register the introspection
query for tooling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
    validate,
)

from bff.graphql.limits import analyze, evaluate
from bff.graphql.persisted import sha256_hex

if TYPE_CHECKING:
    from bff.store import PersistedOperationRecord, PersistedOperationRepository

__all__ = ["OperationCatalogue", "RegisteredOperation", "Vetting", "vet"]

log = logging.getLogger("bff.graphql")


@dataclass(frozen=True, slots=True)
class RegisteredOperation:
    """A registered document of one app: ``hash`` is the SHA-256 of ``document``."""

    app: str
    hash: str
    document: str
    name: str | None = None


class OperationCatalogue:
    """Every app's registered operations, in memory (see the module docstring)."""

    def __init__(
        self,
        repository: PersistedOperationRepository | None = None,
        *,
        interval: float = 1.0,
        operations: Iterable[RegisteredOperation] = (),
    ) -> None:
        self.repository = repository
        self.interval = interval
        self._by_app: dict[str, dict[str, RegisteredOperation]] = {}
        self._fingerprint: tuple[int, float] | None = None
        self._task: asyncio.Task[None] | None = None
        self.replace(operations)

    def get(self, app: str, hash_: str) -> RegisteredOperation | None:
        """The operation registered for ``app`` under ``hash_`` (lower-case hex)."""
        operations = self._by_app.get(app)
        return None if operations is None else operations.get(hash_)

    def has(self, app: str) -> bool:
        """True when ``app`` has registered operations."""
        return bool(self._by_app.get(app))

    def count(self, app: str | None = None) -> int:
        if app is not None:
            return len(self._by_app.get(app, ()))
        return sum(len(ops) for ops in self._by_app.values())

    def replace(self, operations: Iterable[RegisteredOperation]) -> None:
        """Swap in a new set (readers see the old or the new one, never a mix)."""
        by_app: dict[str, dict[str, RegisteredOperation]] = {}
        for op in operations:
            by_app.setdefault(op.app, {})[op.hash] = op
        self._by_app = by_app

    async def load(self) -> None:
        """Read every registered operation from the store."""
        if self.repository is None:
            return
        fingerprint = await self.repository.fingerprint()
        records = await self.repository.list()
        self.replace(_from_record(r) for r in records)
        self._fingerprint = fingerprint
        log.debug("%d registered operations loaded", len(records))

    async def refresh(self) -> bool:
        """Reload when the store changed since the last load; True when it did."""
        if self.repository is None:
            return False
        if await self.repository.fingerprint() == self._fingerprint:
            return False
        await self.load()
        return True

    async def start(self) -> None:
        """Load now (a store failure fails the start-up), then keep refreshing."""
        await self.load()
        if self.repository is not None and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="bff-operations-refresh")

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage; the last good list keeps serving
                    log.warning("cannot refresh the registered operations: %s", exc)
                failing = True

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _from_record(record: PersistedOperationRecord) -> RegisteredOperation:
    return RegisteredOperation(record.app, record.hash, record.document, record.name)


@dataclass
class Vetting:
    """What :func:`vet` found: ``errors`` refuse the document, ``warnings`` do not."""

    hash: str
    name: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def vet(schema: GraphQLSchema, text: str, limits: Any) -> Vetting:
    """Validate ``text`` against ``schema`` and measure it against ``limits`` (an object with
    ``max_depth``, ``max_aliases``, ``max_root_fields`` and ``max_cost``, such as the app's
    configuration)."""
    result = Vetting(sha256_hex(text))
    try:
        document = parse(text)
    except GraphQLError as err:
        result.errors.append(f"syntax error: {err.message}")
        return result
    errors = validate(schema, document)
    if errors:
        result.errors.extend(e.message for e in errors)
        return result
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names = [op.name.value if op.name else None for op in operations]
    result.name = ", ".join(n or "(anonymous)" for n in names) if any(names) else None
    for op, name in zip(operations, names, strict=True):
        label = f"operation {name}" if name else "the operation"
        analysis = analyze(schema, op, fragments)
        if analysis.introspection:
            continue
        cost = evaluate(analysis.cost, None)
        for what, actual, limit in (
            ("depth", analysis.depth, limits.max_depth),
            ("aliases", analysis.aliases, limits.max_aliases),
            ("root fields", analysis.root_fields, limits.max_root_fields),
            ("cost", cost, limits.max_cost),
        ):
            if actual > limit:
                result.warnings.append(
                    f"{label} has {what} {actual}, over the app's limit of {limit} "
                    "(registered operations skip this check)"
                )
    return result
