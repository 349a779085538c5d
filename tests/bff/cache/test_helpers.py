"""Cache keys, entity tags, the response envelope and single-flight."""

from __future__ import annotations

import asyncio

import pytest

from bff.cache import (
    ANY,
    CachedResponse,
    InvalidCacheKey,
    SingleFlight,
    cache_key,
    check_key,
    make_etag,
    none_match,
    parse_if_none_match,
)
from bff.errors import BadRequest


def test_cache_keys_are_fixed_size_and_unambiguous() -> None:
    a = cache_key("gql:web", "ab", "c")
    b = cache_key("gql:web", "a", "bc")
    assert a != b
    assert a.startswith("gql:web:") and len(a) == len("gql:web:") + 64
    assert check_key(a) == a
    assert cache_key("gql:web", b"x") == cache_key("gql:web", "x")


@pytest.mark.parametrize("part", ["a\r\nSet-Cookie: x", "nul\x00", "tab\t", b"\x7f"])
def test_control_characters_in_a_key_part_are_a_400(part: str | bytes) -> None:
    with pytest.raises(InvalidCacheKey) as caught:
        cache_key("gql:web", "ok", part)
    assert isinstance(caught.value, BadRequest)


def test_namespaces_are_the_callers() -> None:
    with pytest.raises(ValueError):
        cache_key("bad namespace", "x")


def test_etags() -> None:
    tag = make_etag(b"body")
    assert tag.startswith('W/"') and tag.endswith('"') and len(tag) == 36
    assert make_etag(b"body") == tag != make_etag(b"other")
    opaque = tag[2:]
    assert none_match(parse_if_none_match(tag.encode()), tag)
    assert none_match(parse_if_none_match(opaque.encode()), tag)  # weak comparison
    assert none_match(parse_if_none_match(b'"x", ' + tag.encode()), tag)
    assert not none_match(parse_if_none_match(b'"x"'), tag)
    assert parse_if_none_match(b" * ") == ANY
    assert none_match(ANY, tag)
    assert parse_if_none_match(b'"a",,  W/"b" ,') == ['"a"', '"b"']


@pytest.mark.parametrize(
    "junk",
    [b"abc", b'"unterminated', b"W/abc", b'"a" "b"', b'"a\x01"', b"", b" , ", b"**"],
)
def test_if_none_match_junk_is_a_400(junk: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_if_none_match(junk)


def test_if_none_match_has_bounds() -> None:
    with pytest.raises(BadRequest):
        parse_if_none_match(b",".join([b'"t"'] * 65))
    with pytest.raises(BadRequest):
        parse_if_none_match(b'"' + b"a" * 9000 + b'"')


def test_cached_response_round_trip() -> None:
    entry = CachedResponse(
        200, (("content-type", "application/json"), ("etag", 'W/"x"')), b'{"data":1}', 1000.0, 60
    )
    back = CachedResponse.from_bytes(entry.to_bytes())
    assert back == entry
    assert back is not None and back.header("etag") == 'W/"x"'
    assert entry.age(1030.9) == 30
    assert entry.fresh(1059.0) and not entry.fresh(1060.0)
    for corrupt in (None, b"", b"junk", entry.to_bytes()[:8], b"bffR1\x00\x00\x00\x05{bad}"):
        assert CachedResponse.from_bytes(corrupt) is None


async def test_single_flight_makes_one_computation() -> None:
    flight = SingleFlight()
    calls = 0

    async def compute() -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return [calls]

    results = await asyncio.gather(*(flight.do("k", compute) for _ in range(100)))
    assert calls == 1
    assert all(r is results[0] for r in results)
    assert (flight.started, flight.joined) == (1, 99)
    assert len(flight) == 0
    await flight.do("k", compute)  # done: the next miss computes again
    assert calls == 2


async def test_single_flight_shares_errors_and_survives_a_cancelled_caller() -> None:
    flight = SingleFlight()
    started = asyncio.Event()

    async def failing() -> None:
        started.set()
        await asyncio.sleep(0.05)
        raise RuntimeError("boom")

    first = asyncio.ensure_future(flight.do("e", failing))
    await started.wait()
    second = asyncio.ensure_future(flight.do("e", failing))
    await asyncio.sleep(0)
    first.cancel()  # the caller that started it goes away; the other still gets the outcome
    with pytest.raises(RuntimeError, match="boom"):
        await second
    with pytest.raises(asyncio.CancelledError):
        await first
