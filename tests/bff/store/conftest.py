"""A fresh store per test: SQLite always, PostgreSQL too when ``BFF_TEST_PG`` is set.

``BFF_TEST_PG`` is a DSN (``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own
schema there, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bff.store import Store

PG_DSN = os.environ.get("BFF_TEST_PG", "")
BACKENDS = ["sqlite", *(["postgresql"] if PG_DSN else [])]


def new_store(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return Store(f"sqlite:///{tmp_path}/store.db")
    return Store(PG_DSN, schema=f"bff_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = new_store(request.param, tmp_path)
    await s.open()
    try:
        yield s
    finally:
        if s.schema is not None and s.is_open:
            await s.drop_schema()
        await s.aclose()
