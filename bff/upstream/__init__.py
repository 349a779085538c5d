"""The upstream layer: one pooled client and one chain of stages per upstream service.

Both the GraphQL resolvers (through ``clients/``) and the REST passthrough proxy send their
requests through here, so timeouts, breakers, retries and metrics apply to both alike.
"""

from bff.upstream.batch import RestBatch
from bff.upstream.call import IDEMPOTENT_METHODS, Handler, UpstreamCall
from bff.upstream.deadline import deadline, remaining_budget
from bff.upstream.pool import UpstreamPool
from bff.upstream.recorder import RecordedCall, UpstreamCalls, upstream_calls
from bff.upstream.transport import AiohttpTransport, TransportKind, make_transport
from bff.upstream.upstream import Target, Upstream

__all__ = [
    "IDEMPOTENT_METHODS",
    "AiohttpTransport",
    "Handler",
    "RecordedCall",
    "RestBatch",
    "Target",
    "TransportKind",
    "Upstream",
    "UpstreamCall",
    "UpstreamCalls",
    "UpstreamPool",
    "deadline",
    "make_transport",
    "remaining_budget",
    "upstream_calls",
]
