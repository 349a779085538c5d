"""REST passthrough: the route table, path normalization, header hygiene and streaming forward.

Built once per process by ``build_gateway`` (:meth:`Proxy.from_config`); the gateway's dispatcher
hands it every request that is not for one of its own exact paths.
"""

from bff.proxy.body import ClientDisconnected, RequestBody
from bff.proxy.headers import (
    HOP_BY_HOP,
    HeaderTransform,
    forward_request_headers,
    forward_response_headers,
)
from bff.proxy.paths import normalize_path, raw_path
from bff.proxy.proxy import Proxy
from bff.proxy.routes import Route, RouteTable, request_host

__all__ = [
    "HOP_BY_HOP",
    "ClientDisconnected",
    "HeaderTransform",
    "Proxy",
    "RequestBody",
    "Route",
    "RouteTable",
    "forward_request_headers",
    "forward_response_headers",
    "normalize_path",
    "raw_path",
    "request_host",
]
