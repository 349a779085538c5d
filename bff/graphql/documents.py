"""Parsed and validated documents, cached per app.

Parsing and validation are the most expensive steps a repeated query can skip: a document is
parsed and validated once per app and kept in an LRU bounded in bytes of query text, so a flood
of distinct queries cannot grow memory. Rejections (syntax or validation errors) are cached too,
so a client repeating a bad query costs a dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)

from bff.errors import TokenLimitExceeded
from bff.observability.context import span

__all__ = ["DocumentCache", "PreparedDocument"]


@dataclass(slots=True)
class PreparedDocument:
    """A query text after parsing and validation against one app's schema.

    ``error_code`` is ``GRAPHQL_PARSE_FAILED``, ``TOKEN_LIMIT_EXCEEDED`` (over ``max_tokens``)
    or ``GRAPHQL_VALIDATION_FAILED`` when ``errors`` is not empty; such a document is never
    executed. ``analysis`` holds per-document facts later
    stages compute once (depth, cost, ...), keyed by stage name.
    """

    document: DocumentNode | None
    errors: list[GraphQLError]
    error_code: str = ""
    operations: dict[str | None, OperationDefinitionNode] = field(default_factory=dict)
    analysis: dict[object, object] = field(default_factory=dict)
    size: int = 0

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        """The operation ``name`` selects, following the spec's rules for a missing name."""
        if name:
            return self.operations.get(name)
        if len(self.operations) == 1:
            return next(iter(self.operations.values()))
        return None

    def is_mutation(self, name: str | None) -> bool:
        op = self.operation(name)
        return op is not None and op.operation is not OperationType.QUERY


def _footprint(doc: PreparedDocument) -> int:
    # Measured with tracemalloc over 300 documents each (AST, errors, key): about 4 KB for a
    # 9-character invalid query, 7.5 KB for a syntax error, 6.6 KB for q2 (41 characters),
    # 15 KB for q1 (144) and 136 KB for a 913-character one failing on 200 fields; this stays
    # within 1.5x of each, so the cache's byte budget holds under a flood of junk documents.
    return 6144 + 128 * doc.size


class DocumentCache:
    """Parse-and-validate with an LRU in front, for one schema (``max_bytes`` bounds its
    estimated memory)."""

    #: Documents longer than this are parsed every time rather than evicting many small ones.
    MAX_CACHED_QUERY = 64 * 1024

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        max_tokens: int | None = 5000,
        hide_suggestions: bool = False,
    ) -> None:
        self.schema = schema
        self.max_tokens = max_tokens
        self.hide_suggestions = hide_suggestions
        self._cache: LRUCache[str, PreparedDocument] = LRUCache(
            maxsize=max_bytes, getsizeof=_footprint
        )

    def get(self, query: str) -> PreparedDocument:
        """The prepared document for ``query``, from the cache when it was seen before."""
        prepared = self._cache.get(query)
        if prepared is not None:
            return prepared
        prepared = self._prepare(query)
        prepared.size = len(query)
        if len(query) <= self.MAX_CACHED_QUERY:
            self._cache[query] = prepared
        return prepared

    def _prepare(self, query: str) -> PreparedDocument:
        try:
            with span("graphql.parse"):
                document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as err:
            code = "GRAPHQL_PARSE_FAILED"
            if err.message.endswith("tokens. Parsing aborted."):  # over max_tokens
                code = TokenLimitExceeded.code
            return PreparedDocument(None, [err], code)
        except RecursionError:
            too_deep = GraphQLError("Document is nested too deeply.")
            return PreparedDocument(None, [too_deep], "GRAPHQL_PARSE_FAILED")
        with span("graphql.validate"):
            errors = validate(
                self.schema, document, max_errors=20, hide_suggestions=self.hide_suggestions
            )
        if errors:
            return PreparedDocument(document, errors, "GRAPHQL_VALIDATION_FAILED")
        operations: dict[str | None, OperationDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                operations[definition.name.value if definition.name else None] = definition
        return PreparedDocument(document, [], "", operations)

    def clear(self) -> None:
        """Forget every prepared document."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
