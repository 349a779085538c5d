"""Path normalization: what the proxy matches and forwards, and what it refuses."""

from __future__ import annotations

import itertools
import random
from urllib.parse import unquote

import pytest

from bff.errors import BadRequest
from bff.proxy import normalize_path, raw_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/api/users/42", "/api/users/42"),
        (b"/", "/"),
        (b"/api/users/", "/api/users/"),
        (b"/api/users/../../admin", "/admin"),
        (b"/api/users/%2e%2e/x", "/api/x"),
        (b"/api/users/%2E%2e/%2e/x", "/api/x"),
        (b"/api/users/./1", "/api/users/1"),
        (b"/api/users/1/.", "/api/users/1/"),
        (b"/api/users/1/..", "/api/users/"),
        (b"/..", "/"),
        (b"/../../..", "/"),
        (b"//api///users//1", "/api/users/1"),
        (b"/%7Euser/%41%62", "/~user/Ab"),
        (b"/a%20b/%c3%a9", "/a%20b/%C3%A9"),
        (b"/.well-known/x", "/.well-known/x"),
        (b"/a/..b/c..", "/a/..b/c.."),
    ],
)
def test_normalized(raw: bytes, expected: str) -> None:
    assert normalize_path(raw) == (expected, False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/files/a%2Fb", "/files/a%2Fb"),
        (b"/files/a%2fb", "/files/a%2Fb"),
        (b"/files/a%5cb", "/files/a%5Cb"),
        (b"/files/a\\b", "/files/a%5Cb"),
    ],
)
def test_encoded_slashes_are_reported_and_kept_encoded(raw: bytes, expected: str) -> None:
    assert normalize_path(raw) == (expected, True)


@pytest.mark.parametrize(
    "raw",
    [
        b"/api/users/..%2fx",  # decodes to ../x
        b"/api/users/%2e%2e%2Fx",
        b"/api/users/..%5Cx",
        b"/api/users/x%2F..",
        b"/api/users/..\\x",
    ],
)
def test_encoded_dot_dot_with_slashes_is_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="dot-dot"):
        normalize_path(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"/a%00b", "NUL"),
        (b"/a%zz", "malformed"),
        (b"/a%", "malformed"),
        (b"/a%2", "malformed"),
        (b"/a b", "percent-encoded"),
        (b"/a\x00", "percent-encoded"),
        (b"/a\tb", "percent-encoded"),
        (b"/caf\xc3\xa9", "percent-encoded"),
        (b"api/users", "start with"),
        (b"*", "start with"),
    ],
)
def test_unsafe_paths_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        normalize_path(raw)


def test_raw_path_drops_the_query_and_falls_back_to_path() -> None:
    assert raw_path({"raw_path": b"/a%2Fb?x=1", "path": "/a/b"}) == b"/a%2Fb"
    assert raw_path({"raw_path": b"/a%2Fb", "path": "/a/b"}) == b"/a%2Fb"
    assert raw_path({"path": "/a b/c"}) == b"/a%20b/c"


def test_no_combination_of_escapes_leaves_a_dot_segment() -> None:
    """Whatever mix of dots, escapes and slashes: the result has no '.'/'..' segment, even
    decoded, and never climbs above the root."""
    pieces = ["..", ".", "%2e%2e", "%2E.", ".%2e", "%2e", "a", "", "b%2fc", "%2F..", "..%5c", "\\"]
    rng = random.Random(4)
    combos = list(itertools.product(pieces, repeat=3))
    combos += [tuple(rng.choice(pieces) for _ in range(6)) for _ in range(2000)]
    for combo in combos:
        raw = ("/api/users/" + "/".join(combo)).encode()
        try:
            path, _ = normalize_path(raw)
        except BadRequest:
            continue
        assert path.startswith("/")
        for segment in path.split("/"):
            parts = unquote(segment).replace("\\", "/").split("/")
            assert ".." not in parts and segment not in (".", ".."), (raw, path)
