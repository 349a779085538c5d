"""The client's address, believing ``X-Forwarded-For`` only from trusted proxies.

Behind a load balancer the socket peer is the balancer, and the client is named in
``X-Forwarded-For``. That header is plain text any client can send, so it is believed only as far
as it was written by proxies listed in ``rate_limits.trusted_proxies``: the list is walked from the
right (the hop the nearest proxy appended) past every trusted address, and the first address that
is not a trusted proxy is the client. A header arriving from an untrusted peer is ignored
altogether, and so is everything left of the first untrusted hop, which is where a client would
put a forged address. (uvicorn's own ``proxy_headers`` handling is off in ``bff serve`` so it never
rewrites ``scope["client"]`` behind our back.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from bff.asgi import Scope

__all__ = ["ClientIp", "IPNetwork", "client_ip", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"
"""The address reported when the server gives no peer (a Unix socket without proxies)."""

_XFF = b"x-forwarded-for"


def parse_networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    """``trusted_proxies`` entries (CIDRs or bare addresses) as networks."""
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs]


def _address(text: str) -> IPAddress | None:
    """An address written by a proxy: ``1.2.3.4``, ``1.2.3.4:567``, ``[::1]:567`` or ``::1``."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address in net for net in networks)


def client_ip(scope: Scope, trusted: Sequence[IPNetwork]) -> str:
    """The client address of a request (see the module docstring).

    With no ``trusted`` networks this is the socket peer, whatever the headers say.
    """
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    if not trusted or peer is None:
        return peer or UNKNOWN
    address = _address(peer)
    if address is None or not _trusted(address, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope["headers"]:
        if name == _XFF:
            hops.extend(value.decode("latin-1").split(","))
    # Walk from the nearest hop back towards the client; `address` is the last trusted one seen.
    for hop in reversed(hops):
        candidate = _address(hop)
        if candidate is None:
            break  # a trusted proxy wrote something that is not an address: stop at the proxy
        address = candidate
        if not _trusted(candidate, trusted):
            break
    return str(address)


class ClientIp:
    """A client-address resolver (``resolver(scope) -> address``) for given trusted proxies.

    Pass it to :class:`~bff.auth.AuthenticationLayer` (``client_ip=``) and to the rate-limit
    layer, so every stage attributes a request to the same address.
    """

    __slots__ = ("trusted",)

    def __init__(self, trusted: Iterable[str | IPNetwork] = ()) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(
            t
            if isinstance(t, ipaddress.IPv4Network | ipaddress.IPv6Network)
            else parse_networks([t])[0]
            for t in trusted
        )

    def __call__(self, scope: Scope) -> str:
        if not self.trusted:  # the common case: no header parsing at all
            client = scope.get("client")
            return client[0] if client else UNKNOWN
        return client_ip(scope, self.trusted)
