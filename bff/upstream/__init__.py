"""The upstream layer: one pooled client and one chain of stages per upstream service.

Both the GraphQL resolvers (through ``clients/``) and the REST passthrough proxy send their
requests through here, so timeouts, balancing, retries, breakers, health and metrics apply to
both alike. The chain of one upstream is assembled in ``Upstream._build_chain``: telemetry
(metrics, tracing; ``bff.observability``) -> recorder -> circuit breaker -> retries -> send
(balancer, deadline, passive health, pooled transport).
"""

from bff.upstream.balancer import Balancer, make_balancer
from bff.upstream.batch import RestBatch
from bff.upstream.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from bff.upstream.call import IDEMPOTENT_METHODS, Handler, UpstreamCall
from bff.upstream.deadline import (
    DeadlineExceeded,
    deadline,
    parse_request_timeout,
    remaining_budget,
)
from bff.upstream.health import HealthChecker, PassiveHealth
from bff.upstream.pool import UpstreamPool
from bff.upstream.recorder import RecordedCall, UpstreamCalls, upstream_calls
from bff.upstream.retry import RETRY_STATUSES, RetryBudget
from bff.upstream.target import Target
from bff.upstream.transport import AiohttpTransport, TransportKind, make_transport
from bff.upstream.upstream import Upstream

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "IDEMPOTENT_METHODS",
    "OPEN",
    "RETRY_STATUSES",
    "AiohttpTransport",
    "Balancer",
    "CircuitBreaker",
    "DeadlineExceeded",
    "Handler",
    "HealthChecker",
    "PassiveHealth",
    "RecordedCall",
    "RestBatch",
    "RetryBudget",
    "Target",
    "TransportKind",
    "Upstream",
    "UpstreamCall",
    "UpstreamCalls",
    "UpstreamPool",
    "deadline",
    "make_balancer",
    "make_transport",
    "parse_request_timeout",
    "remaining_budget",
    "upstream_calls",
]
