"""The client address: X-Forwarded-For believed only as far as trusted proxies wrote it."""

from __future__ import annotations

import pytest

from bff.asgi import Scope
from bff.edge.client_ip import ClientIp, client_ip, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8", "fd00::/8"])


def scope(peer: str | None, *xff: str) -> Scope:
    return {
        "type": "http",
        "client": (peer, 4321) if peer else None,
        "headers": [(b"x-forwarded-for", v.encode()) for v in xff],
    }


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # No trusted proxy in front: the socket peer, whatever the header says.
        ("203.0.113.7", ["1.2.3.4"], "203.0.113.7"),
        # A trusted balancer: the hop it appended.
        ("10.0.0.5", ["198.51.100.9"], "198.51.100.9"),
        # The client forged a hop: the balancer still appended the real one at the right.
        ("10.0.0.5", ["6.6.6.6, 198.51.100.9"], "198.51.100.9"),
        # Two trusted proxies: walked past both.
        ("10.0.0.5", ["6.6.6.6, 198.51.100.9, 10.1.1.1"], "198.51.100.9"),
        # Headers repeated: read in order, as one list.
        ("10.0.0.5", ["6.6.6.6", "198.51.100.9, 10.1.1.1"], "198.51.100.9"),
        # Ports and brackets, as some balancers write them.
        ("10.0.0.5", ["198.51.100.9:5555"], "198.51.100.9"),
        ("10.0.0.5", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("fd00::1", ["2001:db8::2"], "2001:db8::2"),
        # IPv4-mapped IPv6 peers are their IPv4 address.
        ("::ffff:10.0.0.5", ["198.51.100.9"], "198.51.100.9"),
        # Garbage written by a trusted proxy: stop at the proxy.
        ("10.0.0.5", ["unknown"], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.9, unknown, 10.1.1.1"], "10.1.1.1"),
        # Every hop trusted: the farthest one.
        ("10.0.0.5", ["10.2.2.2, 10.1.1.1"], "10.2.2.2"),
        # A trusted peer without the header: the peer.
        ("10.0.0.5", [], "10.0.0.5"),
    ],
)
def test_client_ip(peer: str, xff: list[str], expected: str) -> None:
    assert client_ip(scope(peer, *xff), TRUSTED) == expected
    assert ClientIp(["10.0.0.0/8", "fd00::/8"])(scope(peer, *xff)) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    resolve = ClientIp()
    assert resolve(scope("10.0.0.5", "198.51.100.9")) == "10.0.0.5"
    assert client_ip(scope("10.0.0.5", "198.51.100.9"), []) == "10.0.0.5"


def test_no_peer_is_unknown() -> None:
    assert ClientIp()(scope(None)) == "unknown"
    assert client_ip(scope(None, "1.2.3.4"), TRUSTED) == "unknown"
