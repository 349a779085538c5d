"""HTTP behaviour of the four services: batches, paging, errors, routing."""

from __future__ import annotations

import httpx
import pytest

from services import SERVICE_NAMES, ServiceServer, create_app

# (service, path, id parameter) of every batch endpoint.
BATCHES = [
    ("users", "/users", "ids"),
    ("products", "/products", "ids"),
    ("orders", "/orders", "ids"),
    ("orders", "/orders", "user_ids"),
    ("reviews", "/reviews", "product_ids"),
]
PAGED = [("users", 1000), ("products", 500)]


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "message"}
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["error"] == code


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_health(servers: dict[str, ServiceServer], client: httpx.Client, name: str) -> None:
    r = client.get(servers[name].url + "/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "ok"}


def test_batch_omits_unknown_and_deduplicates(
    servers: dict[str, ServiceServer], client: httpx.Client
) -> None:
    items = client.get(servers["users"].url + "/users?ids=5,0,2,5,1001,2,99999").json()["items"]
    assert sorted(u["id"] for u in items) == [2, 5]

    items = client.get(servers["products"].url + "/products?ids=500,501,1,1").json()["items"]
    assert sorted(p["id"] for p in items) == [1, 500]

    items = client.get(servers["orders"].url + "/orders?ids=10,11,12,10,99").json()["items"]
    assert sorted(o["id"] for o in items) == [10, 11]

    # user 1 has orders 10 and 11; user 2 has 20, 21, 22; user 1001 does not exist.
    url = servers["orders"].url + "/orders?user_ids=2,1,1001,2"
    items = client.get(url).json()["items"]
    assert sorted(o["id"] for o in items) == [10, 11, 20, 21, 22]

    items = client.get(servers["reviews"].url + "/reviews?product_ids=3,3,4,501").json()["items"]
    assert sorted(r["id"] for r in items) == [30, 31, 32]


def test_batch_has_no_total(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    assert set(client.get(servers["users"].url + "/users?ids=1").json()) == {"items"}


@pytest.mark.parametrize(("service", "path", "param"), BATCHES)
def test_batch_accepts_escaped_commas(
    servers: dict[str, ServiceServer], client: httpx.Client, service: str, path: str, param: str
) -> None:
    # httpx escapes the commas (%2C); curl and aiohttp send them as they are: both must work.
    url = servers[service].url + path
    escaped = client.get(url, params={param: "10,30"})
    assert "%2C" in str(escaped.request.url)
    plain = client.get(f"{url}?{param}=10,30")
    assert escaped.status_code == plain.status_code == 200
    assert escaped.json() == plain.json()
    assert escaped.json()["items"]


@pytest.mark.parametrize(("service", "path", "param"), BATCHES)
def test_batch_limit_is_100_ids(
    servers: dict[str, ServiceServer], client: httpx.Client, service: str, path: str, param: str
) -> None:
    url = servers[service].url + path
    assert client.get(url, params={param: ",".join(map(str, range(1, 101)))}).status_code == 200
    r = client.get(url, params={param: ",".join(map(str, range(1, 102)))})
    assert_error(r, 400, "bad_request")
    # The cap counts distinct ids.
    assert client.get(url, params={param: ",".join(["7"] * 150)}).status_code == 200


@pytest.mark.parametrize(("service", "path", "param"), BATCHES)
@pytest.mark.parametrize("raw", ["", "1,", ",1", "1,,2", "a", "1;2", "-1", "1.5", "1 2", "+1"])
def test_batch_rejects_malformed_ids(
    servers: dict[str, ServiceServer],
    client: httpx.Client,
    service: str,
    path: str,
    param: str,
    raw: str,
) -> None:
    assert_error(client.get(servers[service].url + path, params={param: raw}), 400, "bad_request")


def test_batch_ids_with_leading_zeros_or_many_digits(
    servers: dict[str, ServiceServer], client: httpx.Client
) -> None:
    url = servers["users"].url + "/users"
    items = client.get(url, params={"ids": "007,7,0010,00"}).json()["items"]
    assert sorted(u["id"] for u in items) == [7, 10]
    # Well-formed, merely unknown: omitted like any other unknown id.
    assert client.get(url, params={"ids": "9" * 5000 + ",1"}).json()["items"][0]["id"] == 1
    assert client.get(url + "/007").json()["id"] == 7
    assert_error(client.get(url + "/" + "9" * 5000), 404, "not_found")
    assert client.get(url, params={"limit": "007"}).json()["items"][-1]["id"] == 7
    assert_error(client.get(url, params={"offset": "9" * 5000}), 400, "bad_request")


@pytest.mark.parametrize(("name", "total"), PAGED)
def test_paging(
    servers: dict[str, ServiceServer], client: httpx.Client, name: str, total: int
) -> None:
    url = f"{servers[name].url}/{name}"
    page = client.get(url).json()
    assert page["total"] == total
    assert [x["id"] for x in page["items"]] == list(range(1, 21))  # default limit 20

    page = client.get(url, params={"limit": 3, "offset": 10}).json()
    assert [x["id"] for x in page["items"]] == [11, 12, 13]
    assert page["total"] == total

    page = client.get(url, params={"limit": 100, "offset": total - 5}).json()
    assert [x["id"] for x in page["items"]] == list(range(total - 4, total + 1))

    assert client.get(url, params={"limit": 0}).json() == {"items": [], "total": total}
    assert client.get(url, params={"offset": 10**6}).json() == {"items": [], "total": total}


@pytest.mark.parametrize(("name", "total"), PAGED)
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": ""},
        {"offset": "-1"},
        {"offset": "x"},
        {"offset": "2.0"},
        {"ids": "1", "limit": "500"},
    ],
)
def test_paging_rejects_bad_limit_and_offset(
    servers: dict[str, ServiceServer],
    client: httpx.Client,
    name: str,
    total: int,
    params: dict[str, str],
) -> None:
    assert_error(client.get(f"{servers[name].url}/{name}", params=params), 400, "bad_request")


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("users", "/users/0"),
        ("users", "/users/1001"),
        ("users", "/users/abc"),
        ("users", "/users/-1"),
        ("users", "/users/1/orders"),
        ("users", "/users/"),
        ("products", "/products/501"),
        ("products", "/products/1.0"),
        ("orders", "/orders/12"),  # user 1 has orders 10 and 11 only
        ("orders", "/orders/100000"),  # nothing created yet
        ("orders", "/orders/x"),
        ("reviews", "/reviews/70"),  # reviews have no item route
        ("users", "/products/1"),
        ("users", "/"),
        ("orders", "/nope"),
    ],
)
def test_not_found(
    servers: dict[str, ServiceServer], client: httpx.Client, service: str, path: str
) -> None:
    assert_error(client.get(servers[service].url + path), 404, "not_found")


@pytest.mark.parametrize(
    ("service", "method", "path", "allow"),
    [
        ("users", "POST", "/users", "GET"),
        ("users", "DELETE", "/users/1", "GET"),
        ("products", "PUT", "/products/1", "GET"),
        ("reviews", "POST", "/reviews", "GET"),
        ("orders", "DELETE", "/orders", "GET, POST"),
        ("orders", "POST", "/orders/10", "GET"),
        ("users", "POST", "/health", "GET"),
        ("users", "GET", "/_reset", "POST"),
        ("users", "POST", "/_stats", "GET"),
    ],
)
def test_method_not_allowed(
    servers: dict[str, ServiceServer],
    client: httpx.Client,
    service: str,
    method: str,
    path: str,
    allow: str,
) -> None:
    r = client.request(method, servers[service].url + path)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allow


def test_orders_need_user_ids_or_ids(
    servers: dict[str, ServiceServer], client: httpx.Client
) -> None:
    url = servers["orders"].url + "/orders"
    assert_error(client.get(url), 400, "bad_request")
    assert_error(client.get(url, params={"limit": 5}), 400, "bad_request")
    assert_error(client.get(url, params={"ids": "10", "user_ids": "1"}), 400, "bad_request")


def test_reviews_need_product_ids(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    assert_error(client.get(servers["reviews"].url + "/reviews"), 400, "bad_request")


def test_unknown_query_parameters_are_ignored(
    servers: dict[str, ServiceServer], client: httpx.Client
) -> None:
    r = client.get(servers["users"].url + "/users", params={"ids": "1", "fields": "name"})
    assert [u["id"] for u in r.json()["items"]] == [1]


def test_create_app_rejects_unknown_service() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        create_app("payments")
    with pytest.raises(ValueError):
        create_app("users", latency_ms=-1)
