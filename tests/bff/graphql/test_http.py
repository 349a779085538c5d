"""GraphQL over HTTP: methods, media types, and every bad input answered with a clean 400."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.gateway import gql

Q = "{ user(id: 1) { name } }"


async def test_post_json(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", Q)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"data": {"user": {"name": "User 1"}}}


async def test_graphql_response_json_when_asked(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/graphql/web",
        json={"query": Q},
        headers={"accept": "application/graphql-response+json, application/json;q=0.9"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/graphql-response+json"


async def test_get_query_with_variables(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/graphql/web",
        params={
            "query": "query U($id: ID!) { user(id: $id) { name } }",
            "variables": json.dumps({"id": "2"}),
            "operationName": "U",
        },
    )
    assert r.status_code == 200
    assert r.json()["data"]["user"]["name"] == "User 2"


async def test_mutation_over_get_is_405(client: httpx.AsyncClient) -> None:
    q = "mutation { placeOrder(lines: [{productId: 1, quantity: 1}]) { id } }"
    r = await client.get("/graphql/web", params={"query": q})
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_other_methods_are_405(client: httpx.AsyncClient) -> None:
    r = await client.put("/graphql/web", json={"query": Q})
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]


async def test_graphiql_for_browsers(client: httpx.AsyncClient) -> None:
    r = await client.get("/graphql/web", headers={"accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert b"graphiql" in r.content.lower()
    assert b'"/graphql/web"' in r.content


async def test_no_graphiql_where_disabled(client: httpx.AsyncClient) -> None:
    r = await client.get("/graphql/iot", headers={"accept": "text/html"})
    assert r.status_code == 406


async def test_unsupported_accept_is_406(client: httpx.AsyncClient) -> None:
    r = await client.post("/graphql/web", json={"query": Q}, headers={"accept": "application/xml"})
    assert r.status_code == 406
    assert r.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


async def test_application_graphql_body(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/graphql/web", content=Q, headers={"content-type": "application/graphql"}
    )
    assert r.json() == {"data": {"user": {"name": "User 1"}}}


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "batched operations"),
        (b'"a string"', "application/json", "must be a JSON object"),
        (b"42", "application/json", "must be a JSON object"),
        (b"{}", "application/json", "no 'query'"),
        (b'{"query": ""}', "application/json", "no 'query'"),
        (b'{"query": 5}', "application/json", "'query' must be a string"),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json", "'variables'"),
        (b'{"query": "{ __typename }", "operationName": 3}', "application/json", "operationName"),
        (b'{"query": "{ __typename }", "extensions": "x"}', "application/json", "'extensions'"),
        (b"\xff\xfe", "application/graphql", "UTF-8"),
    ],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, body: bytes, content_type: str, message: str
) -> None:
    r = await client.post("/graphql/web", content=body, headers={"content-type": content_type})
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/graphql/web", content=Q, headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_bad_json_in_get_parameters(client: httpx.AsyncClient) -> None:
    r = await client.get("/graphql/web", params={"query": Q, "variables": "{oops"})
    assert r.status_code == 400
    assert "variables" in r.json()["errors"][0]["message"]


async def test_syntax_error_is_400(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", "{ user(id: 1) { name }")
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "data" not in r.json()


async def test_validation_error_is_400(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", "{ user(id: 1) { nope } }")
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["locations"] == [{"line": 1, "column": 17}]


async def test_variables_of_the_wrong_type_are_400(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", "query U($l: Int!) { users(limit: $l) { total } }", {"l": "many"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_missing_required_variable_is_400(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", "query U($id: ID!) { user(id: $id) { name } }", {})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_unknown_operation_name_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/graphql/web", json={"query": "query A { __typename }", "operationName": "B"}
    )
    assert r.status_code == 400
    assert "Unknown operation named 'B'" in r.json()["errors"][0]["message"]


async def test_several_operations_need_a_name(client: httpx.AsyncClient) -> None:
    doc = "query A { __typename } query B { __typename }"
    r = await client.post("/graphql/web", json={"query": doc})
    assert r.status_code == 400
    r = await client.post("/graphql/web", json={"query": doc, "operationName": "B"})
    assert r.json() == {"data": {"__typename": "Query"}}


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = "{ __typename }" + " " * (1024 * 1024 + 10)
    r = await client.post("/graphql/web", json={"query": big})
    assert r.status_code == 413
    assert r.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_argument_bounds_are_bad_user_input(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", "{ users(limit: 101) { total } }")
    assert r.status_code == 200
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["users"]
    r = await gql(client, "mobile", "{ users(limit: 51) { total } }")
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    r = await gql(client, "mobile", "{ users(limit: 50) { total } }")
    assert r.json() == {"data": {"users": {"total": 1000}}}
    r = await gql(client, "web", "{ products(limit: 0) { total } }")
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    r = await gql(client, "web", '{ user(id: "abc") { name } }')
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_repeated_documents_are_parsed_once(client: httpx.AsyncClient, gateway) -> None:  # type: ignore[no-untyped-def]
    app = gateway.graphql_apps["web"]
    query = "{ user(id: 3) { name } __typename }"
    before = len(app.documents)
    await gql(client, "web", query)
    await gql(client, "web", query)
    assert len(app.documents) == before + 1
    assert app.documents.get(query) is app.documents.get(query)
