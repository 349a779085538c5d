"""Failures of the store, independent of the database behind it."""

from __future__ import annotations

__all__ = ["StoreConflict", "StoreError"]


class StoreError(Exception):
    """The store could not be reached or refused an operation.

    The message is for logs and operators; it never holds the store's password.
    """


class StoreConflict(StoreError):
    """A write broke a uniqueness rule (an id or key prefix already taken)."""
