"""Pure-ASGI edge layers, applied to every request in the order ``gateway.py`` lists them."""

from bff.edge.request_id import REQUEST_ID_KEY, RequestIdLayer, new_request_id

__all__ = ["REQUEST_ID_KEY", "RequestIdLayer", "new_request_id"]
