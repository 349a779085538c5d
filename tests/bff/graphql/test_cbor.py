"""CBOR on the iot app: requests, answers, and bad bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cbor2
import httpx
import orjson
import pytest

from bff.errors import BadRequest
from bff.gateway import Gateway
from bff.graphql import cbor
from tests.bff.graphql.delivery_support import api_key, client_for, own_gateway, register
from tests.conftest import SampleServices

STOCK = "query StockLevels($ids: [ID!]!) { products(ids: $ids) { id stock } }"
CBOR = "application/cbor"


@pytest.fixture(scope="module")
async def gw(services: SampleServices) -> AsyncIterator[Gateway]:
    async with own_gateway(services.env) as gateway:
        await register(gateway, "iot", STOCK, "StockLevels")
        yield gateway


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gw) as c:
        yield c


@pytest.fixture
async def key(client: httpx.AsyncClient) -> dict[str, str]:
    return await api_key(client)


def post_cbor(body: Any) -> dict[str, Any]:
    return {"content": cbor2.dumps(body), "headers": {"content-type": CBOR, "accept": CBOR}}


async def test_cbor_in_and_out(client: httpx.AsyncClient, key: dict[str, str]) -> None:
    request = {"query": STOCK, "variables": {"ids": ["1", "2"]}}
    args = post_cbor(request)
    r = await client.post("/graphql/iot", content=args["content"], headers=args["headers"] | key)
    assert r.status_code == 200
    assert r.headers["content-type"] == CBOR
    answer = cbor2.loads(r.content)
    as_json = await client.post("/graphql/iot", json=request, headers=key)
    assert answer == as_json.json()
    assert [p["id"] for p in answer["data"]["products"]] == ["1", "2"]
    assert len(r.content) < len(as_json.content)


async def test_a_json_request_may_ask_for_a_cbor_answer(
    client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    request = {"query": STOCK, "variables": {"ids": ["3"]}}
    r = await client.post("/graphql/iot", json=request, headers={"accept": CBOR, **key})
    assert r.headers["content-type"] == CBOR
    assert cbor2.loads(r.content)["data"]["products"][0]["id"] == "3"
    # and a CBOR request without Accept gets JSON, the default
    args = post_cbor(request)
    headers = {"content-type": CBOR, **key}
    r = await client.post("/graphql/iot", content=args["content"], headers=headers)
    assert r.headers["content-type"] == "application/json"


async def test_errors_come_back_in_cbor_too(client: httpx.AsyncClient, key: dict[str, str]) -> None:
    args = post_cbor({"query": "{ product(id: 1) { id } }"})  # not registered
    r = await client.post("/graphql/iot", content=args["content"], headers=args["headers"] | key)
    assert r.status_code == 400 and r.headers["content-type"] == CBOR
    assert cbor2.loads(r.content)["errors"][0]["extensions"]["code"] == (
        "PERSISTED_QUERY_NOT_ALLOWED"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\x00garbage", "not valid CBOR"),
        (b"", "not valid CBOR"),
        (b"\xa1\x65query", "not valid CBOR"),  # truncated
        (cbor2.dumps({"query": "{ a }"}) + b"\x00", "trailing bytes"),
        (cbor2.dumps("just a string"), "must be a CBOR map"),
        (cbor2.dumps({"query": b"bytes, not text"}), "only the JSON subset"),
        (cbor2.dumps({1: "integer key"}), "not valid CBOR"),
        (b"\xa1\x65query\xd8\x23\x63a.*", "not valid CBOR"),  # tag 35: a regular expression
        (b"\xa1\x65query\xd9\x27\x0f\x00", "not valid CBOR"),  # an unknown tag
        (b"\xa1\x65query\xc1\x1a\x5f\x00\x00\x00", "not valid CBOR"),  # tag 1: a date
        (b"\xa1\x65query\xf7", "only the JSON subset"),  # undefined
        (b"\xa1\x65query\xf9\x7e\x00", "finite"),  # NaN
        (b"\x81" * 200 + b"\x00", "not valid CBOR"),  # nested too deep
        (b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", "not valid CBOR"),  # a 2**64-byte string
    ],
)
async def test_bad_cbor_is_a_clean_400(
    client: httpx.AsyncClient, key: dict[str, str], body: bytes, message: str
) -> None:
    headers = {"content-type": CBOR, "accept": "application/json", **key}
    r = await client.post("/graphql/iot", content=body, headers=headers)
    assert r.status_code == 400, r.text
    (error,) = r.json()["errors"]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_cbor_only_where_the_app_offers_it(client: httpx.AsyncClient) -> None:
    # web's encodings are [json]: a CBOR body is 415, a CBOR-only Accept is 406.
    args = post_cbor({"query": "{ product(id: 1) { id } }"})
    r = await client.post("/graphql/web", content=args["content"], headers={"content-type": CBOR})
    assert r.status_code == 415
    r = await client.post(
        "/graphql/web", json={"query": "{ product(id: 1) { id } }"}, headers={"accept": CBOR}
    )
    assert r.status_code == 406
    assert r.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
    # With a fallback the client accepts, JSON it is.
    r = await client.post(
        "/graphql/web",
        json={"query": "{ product(id: 1) { id } }"},
        headers={"accept": f"{CBOR}, application/json;q=0.5"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"


async def test_the_iot_apps_unsupported_accept_is_406(
    client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    r = await client.post(
        "/graphql/iot", json={"query": STOCK}, headers={"accept": "application/xml", **key}
    )
    assert r.status_code == 406


def test_decoding_is_the_json_subset() -> None:
    value = {"query": "q", "variables": {"a": [1, 2.5, True, None, "s", {"b": -3}]}}
    assert cbor.decode_request(cbor2.dumps(value)) == value
    assert cbor.decode_request(cbor2.dumps(value)) == orjson.loads(orjson.dumps(value))
    with pytest.raises(BadRequest):
        cbor.decode_request(cbor2.dumps({"a": {1, 2}}))  # a set (tag 258)
    with pytest.raises(BadRequest):
        cbor.decode_request(cbor2.dumps({"a": float("inf")}))
