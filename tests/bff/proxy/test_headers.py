"""Header hygiene both ways, and per-route transforms (unit level; end to end in test_proxy)."""

from __future__ import annotations

import pytest

from bff.config import HeaderTransformConfig
from bff.errors import BadRequest
from bff.proxy import (
    HOP_BY_HOP,
    HeaderTransform,
    forward_request_headers,
    forward_response_headers,
)


def forward(
    headers: list[tuple[bytes, bytes]], peer: bytes | None = b"10.0.0.9"
) -> dict[bytes, bytes]:
    result = forward_request_headers(headers, peer=peer, scheme=b"https", request_id=b"rid-1")
    names = [k for k, _ in result.headers]
    assert len(names) == len(set(names)), names
    return dict(result.headers)


def test_hop_by_hop_headers_are_not_forwarded() -> None:
    sent = [(name, b"x") for name in sorted(HOP_BY_HOP)]
    sent += [(b"connection", b"X-Secret, close"), (b"x-secret", b"1"), (b"x-kept", b"2")]
    sent += [(b"expect", b"100-continue")]
    out = forward(sent)
    assert not set(out) & (HOP_BY_HOP | {b"x-secret", b"expect", b"host"})
    assert out[b"x-kept"] == b"2"


def test_forwarding_headers_are_set() -> None:
    out = forward(
        [
            (b"host", b"shop.example.com:8443"),
            (b"x-forwarded-for", b"1.1.1.1"),
            (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3"),
            (b"x-forwarded-proto", b"gopher"),
            (b"x-forwarded-host", b"evil.example"),
            (b"x-request-id", b"callers-own"),
        ]
    )
    assert out[b"x-forwarded-for"] == b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9"
    assert out[b"x-forwarded-proto"] == b"https"
    assert out[b"x-forwarded-host"] == b"shop.example.com:8443"
    assert out[b"x-request-id"] == b"rid-1"


def test_without_a_peer_address_x_forwarded_for_is_kept_as_is() -> None:
    assert b"x-forwarded-for" not in forward([], peer=None)
    assert forward([(b"x-forwarded-for", b"1.1.1.1")], peer=None)[b"x-forwarded-for"] == b"1.1.1.1"


@pytest.mark.parametrize("bad", [b"a\r\nInjected: 1", b"a\nb", b"a\rb", b"a\x00b"])
def test_crlf_or_nul_in_a_value_is_refused(bad: bytes) -> None:
    with pytest.raises(BadRequest, match="CR, LF or NUL"):
        forward([(b"x-ok", b"fine"), (b"x-custom", bad)])
    with pytest.raises(BadRequest):  # even in a header that would not be forwarded
        forward([(b"connection", bad)])


def test_body_length() -> None:
    result = forward_request_headers(
        [(b"content-length", b"12")], peer=None, scheme=b"http", request_id=None
    )
    assert (result.content_length, result.chunked) == (12, False)
    result = forward_request_headers(
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"12")],
        peer=None,
        scheme=b"http",
        request_id=None,
    )
    assert (result.content_length, result.chunked) == (None, True)
    assert [k for k, _ in result.headers] == [b"x-forwarded-proto"]
    for bad in (
        [(b"content-length", b"-1")],
        [(b"content-length", b"1"), (b"content-length", b"2")],
    ):
        with pytest.raises(BadRequest, match="Content-Length"):
            forward_request_headers(bad, peer=None, scheme=b"http", request_id=None)


def test_response_hygiene() -> None:
    out = forward_response_headers(
        [
            (b"Server", b"nginx"),
            (b"Date", b"Sun, 22 Nov 2026 13:30:28 GMT"),
            (b"X-Powered-By", b"PHP"),
            (b"Connection", b"x-internal"),
            (b"X-Internal", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Content-Type", b"text/plain"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ]
    )
    assert out == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_transforms_remove_then_rename_then_add() -> None:
    transform = HeaderTransform.from_config(
        HeaderTransformConfig(
            add={"X-Added": "yes", "X-Replaced": "new"},
            remove=["x-secret"],
            rename={"x-old": "x-new", "x-secret": "x-leak"},
        )
    )
    assert transform is not None
    out = transform.apply(
        [
            (b"x-secret", b"s"),
            (b"x-old", b"o"),
            (b"x-replaced", b"old"),
            (b"x-other", b"1"),
        ]
    )
    assert out == [
        (b"x-new", b"o"),
        (b"x-other", b"1"),
        (b"x-added", b"yes"),
        (b"x-replaced", b"new"),
    ]
    assert HeaderTransform.from_config(HeaderTransformConfig()) is None
