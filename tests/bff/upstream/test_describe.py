"""The read API for metrics and the admin API: ``Upstream.describe()`` and the chain built."""

from __future__ import annotations

import orjson

from bff.config import GatewayConfig, validate_config
from bff.upstream import UpstreamPool
from bff.upstream.breaker import BreakerStage
from bff.upstream.retry import RetryStage


def pool(upstreams: dict[str, object]) -> UpstreamPool:
    config: GatewayConfig = validate_config({"upstreams": upstreams})
    return UpstreamPool.from_config(config.upstreams)


async def test_describe_reports_every_stage() -> None:
    p = pool(
        {
            "users": {
                "targets": ["http://10.0.0.1:80", {"url": "http://10.0.0.2:80", "weight": 3}],
                "balance": "weighted",
                "retries": {"attempts": 2, "budget_ratio": 0.1},
                "breaker": {"failure_threshold": 4},
                "health_check": {"path": "/ready", "interval": 2},
            }
        }
    )
    try:
        info = p.describe()["users"]
        orjson.dumps(info)  # JSON-ready for the admin API
        assert info["balance"] == "weighted"
        assert [t["url"] for t in info["targets"]] == ["http://10.0.0.1:80", "http://10.0.0.2:80"]
        assert info["targets"][1] == {
            "url": "http://10.0.0.2:80",
            "weight": 3,
            "healthy": True,
            "ejected_for": 0.0,
            "ejections": 0,
            "consecutive_failures": 0,
            "active_requests": 0,
        }
        assert info["breaker"]["state"] == "closed"
        assert info["breaker"]["failure_threshold"] == 4
        assert info["retries"]["attempts"] == 2
        assert info["retries"]["budget"]["ratio"] == 0.1
        assert info["passive_health"] == {"consecutive_failures": 5, "ejection_time": 10.0}
        assert info["health_check"] == {"path": "/ready", "interval": 2.0, "running": False}
    finally:
        await p.aclose()


async def test_stages_with_nothing_to_do_are_left_out() -> None:
    p = pool(
        {
            "lean": {
                "targets": ["http://10.0.0.1:80"],
                "retries": {"attempts": 0},
                "breaker": {"enabled": False},
                "passive_health": {"enabled": False},
            },
            "full": {"targets": ["http://10.0.0.1:80"]},
        }
    )
    try:
        lean, full = p["lean"], p["full"]
        assert lean.stage(RetryStage) is None and lean.stage(BreakerStage) is None
        assert lean.breaker is None and lean.retry_budget is None and lean.passive_health is None
        info = lean.describe()
        assert info["breaker"] is None and info["retries"] is None
        # The defaults: a breaker, one retry, passive health.
        assert full.stage(RetryStage) is not None and full.stage(BreakerStage) is not None
        assert full.retry_attempts == 1 and full.passive_health is not None
    finally:
        await p.aclose()
