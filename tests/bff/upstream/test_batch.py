"""RestBatch: results matched by key (never position), composite keys, partial chunk failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from bff.errors import UpstreamError
from bff.upstream import RestBatch, Upstream
from tests.support.servers import ThreadedServer


async def reordering_service(scope: Any, receive: Any, send: Any) -> None:
    """Answers ``/items?ids=..`` in reverse order; any chunk containing id 666 fails with 500;
    ``/pairs?keys=a:1,b:2`` answers composite-keyed items; ``/junk`` breaks its contract."""
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode())
    path = scope["path"]
    status, body = 200, b""
    if path == "/items":
        ids = [int(i) for i in query["ids"][0].split(",")]
        if 666 in ids:
            status, body = 500, b'{"error":"boom"}'
        else:
            items = [{"id": i, "twice": i * 2} for i in reversed(ids) if i < 1000]
            body = orjson.dumps({"items": items})
    elif path == "/pairs":
        keys = [k.split(":") for k in query["keys"][0].split(",")]
        items = [{"kind": k, "num": int(n), "label": f"{k}{n}"} for k, n in reversed(keys)]
        body = orjson.dumps({"items": items})
    elif path == "/many":
        ids = [int(i) for i in query["owner_ids"][0].split(",")]
        items = [{"owner_id": i, "n": n} for i in ids for n in range(i % 3)]
        body = orjson.dumps({"items": items[::-1]})
    else:
        body = b'{"nope": []}'
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(reordering_service, lifespan="off") as srv:
        yield srv


@pytest.fixture
async def upstream(server: ThreadedServer) -> AsyncIterator[Upstream]:
    up = Upstream("fake", [(server.url, 1)])
    yield up
    await up.aclose()


async def test_matched_by_key_with_unknowns_as_none(upstream: Upstream) -> None:
    batch: RestBatch[int, Any] = RestBatch(path="/items", key_param="ids", key_field="id")
    values = await batch.fetch(upstream, [3, 1, 5000, 2, 3])
    assert values == [
        {"id": 3, "twice": 6},
        {"id": 1, "twice": 2},
        None,
        {"id": 2, "twice": 4},
        {"id": 3, "twice": 6},
    ]


async def test_a_failed_chunk_fails_only_its_keys(upstream: Upstream) -> None:
    batch: RestBatch[int, Any] = RestBatch(
        path="/items", key_param="ids", key_field="id", max_batch_size=2
    )
    values = await batch.fetch_partial(upstream, [1, 2, 666, 3, 4])
    # chunks: [1, 2], [666, 3], [4]
    assert values[0] == {"id": 1, "twice": 2}
    assert values[1] == {"id": 2, "twice": 4}
    assert isinstance(values[2], UpstreamError)
    assert isinstance(values[3], UpstreamError)
    assert values[4] == {"id": 4, "twice": 8}
    with pytest.raises(UpstreamError):
        await batch.fetch(upstream, [1, 666])


async def test_composite_keys(upstream: Upstream) -> None:
    batch: RestBatch[tuple[str, int], str] = RestBatch(
        path="/pairs",
        key_field=("kind", "num"),
        encode=lambda keys: {"keys": ",".join(f"{k}:{n}" for k, n in keys)},
        parse=lambda item: item["label"],
    )
    assert await batch.fetch(upstream, [("b", 2), ("a", 1)]) == ["b2", "a1"]


async def test_one_to_many(upstream: Upstream) -> None:
    batch: RestBatch[int, Any] = RestBatch(
        path="/many",
        key_param="owner_ids",
        key_field="owner_id",
        many=True,
        parse=lambda item: item["n"],
    )
    values = await batch.fetch(upstream, [3, 4, 5])
    assert [sorted(v) for v in values] == [[], [0], [0, 1]]


async def test_a_body_that_breaks_the_contract_is_an_upstream_error(upstream: Upstream) -> None:
    batch: RestBatch[int, Any] = RestBatch(path="/junk", key_param="ids", key_field="id")
    with pytest.raises(UpstreamError):
        await batch.fetch(upstream, [1])
