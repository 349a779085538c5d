"""The benchmark scenarios. Each starts what it needs and returns measured results."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from bench.runner import (
    LOAD_CPU,
    Result,
    _pinned,
    cpu_seconds,
    exact_upstream_counts,
    gateway,
    gateway_config,
    peak_rss_mb,
    read_stats,
    redis_server,
    reset_stats,
    run_wrk,
    sample_services,
)

Q1 = (
    "{ users(limit: 20) { items { id name orders { id status total { formatted } "
    "lines { quantity product { id name price { amountCents } } } } } } }"
)
Q2 = "{ users(limit: 1) { items { id name } } }"


def _gateway_result(
    name: str,
    opts: Options,
    connections: int,
    stats: dict[str, float],
    per_request: dict[str, float],
    pid: int,
    cpu_ms: float,
) -> Result:
    """A wrk run against the gateway, as one row of the results table."""
    return Result(
        scenario=name,
        target="gateway",
        connections=connections,
        duration_s=opts.duration,
        requests_per_s=stats["rps"],
        p50_ms=stats["p50"],
        p99_ms=stats["p99"],
        errors=int(stats["errors"]),
        # Each service process keeps its own /_stats: with several, a read sees one at random.
        upstream_per_request=per_request if opts.service_processes == 1 else None,
        gateway_peak_rss_mb=peak_rss_mb(pid),
        latency_ms=opts.latency_ms,
        gateway_cpu_ms=cpu_ms,
    )


@dataclass
class Options:
    latency_ms: float = 0.0
    duration: float = 10.0
    connections: int = 32
    service_processes: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)


def _graphql_run(name: str, query: str, opts: Options, *, connections: int) -> Result:
    body = json.dumps({"query": query}).encode()
    with (
        sample_services(opts.latency_ms, opts.service_processes) as urls,
        gateway(gateway_config(urls, opts.overrides)) as gw,
    ):
        url = gw.url + "/graphql/web"
        headers = {"content-type": "application/json"}
        # Warm-up: connections, document cache, JIT-free Python's own caches.
        run_wrk(url, connections=connections, duration=2, method="POST", body=body, headers=headers)
        cpu_before = cpu_seconds(gw.pid)
        stats = run_wrk(
            url,
            connections=connections,
            duration=opts.duration,
            method="POST",
            body=body,
            headers=headers,
        )
        cpu_ms = (cpu_seconds(gw.pid) - cpu_before) * 1000 / max(stats["total"], 1)
        per_request = exact_upstream_counts(url, body, urls)
        return _gateway_result(name, opts, connections, stats, per_request, gw.pid, cpu_ms)


def healthz(opts: Options) -> list[Result]:
    """The gateway's own floor: GET /healthz through every edge layer."""
    with sample_services(0) as urls, gateway(gateway_config(urls, opts.overrides)) as gw:
        run_wrk(gw.url + "/healthz", connections=opts.connections, duration=2)
        cpu_before = cpu_seconds(gw.pid)
        stats = run_wrk(gw.url + "/healthz", connections=opts.connections, duration=opts.duration)
        cpu_ms = (cpu_seconds(gw.pid) - cpu_before) * 1000 / max(stats["total"], 1)
        return [
            Result(
                scenario="healthz",
                target="gateway",
                connections=opts.connections,
                duration_s=opts.duration,
                requests_per_s=stats["rps"],
                p50_ms=stats["p50"],
                p99_ms=stats["p99"],
                errors=int(stats["errors"]),
                gateway_peak_rss_mb=peak_rss_mb(gw.pid),
                gateway_cpu_ms=cpu_ms,
            )
        ]


def q1(opts: Options) -> list[Result]:
    """The 4-request nested query at 32 connections, and single-client latency."""
    return [
        _graphql_run("q1", Q1, opts, connections=opts.connections),
        _graphql_run("q1", Q1, opts, connections=1),
    ]


def q2(opts: Options) -> list[Result]:
    """The smallest query: one upstream request."""
    return [
        _graphql_run("q2", Q2, opts, connections=opts.connections),
        _graphql_run("q2", Q2, opts, connections=1),
    ]


def cached(opts: Options) -> list[Result]:
    """q2 answered from a warm whole-response cache (anonymous, cacheable for 30 s), and a
    passthrough GET answered from a warm REST response cache (``cache: {ttl: 60}``), next to the
    same GET forwarded uncached."""
    overrides = copy.deepcopy(opts.overrides)
    overrides.setdefault("graphql", {}).setdefault("response_cache", True)
    warm = replace(opts, overrides=overrides)
    return [
        _graphql_run("cached q2", Q2, warm, connections=opts.connections),
        _graphql_run("cached q2", Q2, warm, connections=1),
        *(
            _passthrough_run(name, cache, opts, connections=c)
            for name, cache in (("cached GET", {"ttl": 60}), ("passthrough GET", None))
            for c in (opts.connections, 1)
        ),
    ]


PASSTHROUGH_PATH = "/api/users/7"


def _passthrough_run(
    name: str, cache: dict[str, Any] | None, opts: Options, *, connections: int
) -> Result:
    route: dict[str, Any] = {
        "id": "users",
        "path": "/api/users",
        "methods": ["GET"],
        "upstream": "users",
        "strip_prefix": "/api",
    }
    if cache is not None:
        route["cache"] = cache
    overrides = _with(opts.overrides, {"routes": [route]})
    with (
        sample_services(opts.latency_ms, opts.service_processes) as urls,
        gateway(gateway_config(urls, overrides)) as gw,
    ):
        url = gw.url + PASSTHROUGH_PATH
        run_wrk(url, connections=connections, duration=2)  # warm-up: fills the cache
        cpu_before = cpu_seconds(gw.pid)
        stats = run_wrk(url, connections=connections, duration=opts.duration)
        cpu_ms = (cpu_seconds(gw.pid) - cpu_before) * 1000 / max(stats["total"], 1)
        time.sleep(1.0)  # let the load run's in-flight requests drain
        reset_stats(urls)
        with httpx.Client(timeout=30) as client:
            for _ in range(20):
                client.get(url).raise_for_status()
        per_request = {k: v / 20 for k, v in read_stats(urls).items() if v}
        return _gateway_result(name, opts, connections, stats, per_request, gw.pid, cpu_ms)


def _open_loop(url: str, rate: float, duration: float) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "bench.openloop",
        url,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
    ]
    out = subprocess.run(_pinned(LOAD_CPU, cmd), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def passthrough(opts: Options) -> list[Result]:
    """GET /api/users/42 through the gateway (auth off, no cache) vs directly to the service,
    32 connections; then the latency the gateway adds at 1,000 req/s and at half its max rate
    (open loop, from the schedule)."""
    path = "/api/users/42"
    route = {
        "id": "users",
        "path": "/api/users",
        "methods": ["GET"],
        "upstream": "users",
        "strip_prefix": "/api",
    }
    overrides = _with(opts.overrides, {"routes": [route]})
    results: list[Result] = []
    with (
        sample_services(opts.latency_ms, opts.service_processes) as urls,
        gateway(gateway_config(urls, overrides)) as gw,
    ):
        direct_url = urls["users"] + "/users/42"
        gateway_url = gw.url + path
        for target, url in (("direct", direct_url), ("gateway", gateway_url)):
            run_wrk(url, connections=opts.connections, duration=2)
            cpu_before = cpu_seconds(gw.pid)
            stats = run_wrk(url, connections=opts.connections, duration=opts.duration)
            cpu_ms = (cpu_seconds(gw.pid) - cpu_before) * 1000 / max(stats["total"], 1)
            results.append(
                Result(
                    scenario="passthrough",
                    target=target,
                    connections=opts.connections,
                    duration_s=opts.duration,
                    requests_per_s=stats["rps"],
                    p50_ms=stats["p50"],
                    p99_ms=stats["p99"],
                    errors=int(stats["errors"]),
                    upstream_per_request=None,
                    gateway_peak_rss_mb=peak_rss_mb(gw.pid) if target == "gateway" else None,
                    latency_ms=opts.latency_ms,
                    gateway_cpu_ms=cpu_ms if target == "gateway" else None,
                )
            )
        max_rate = results[-1].requests_per_s
        for rate in (1000.0, round(max_rate / 2)):
            for target, url in (("direct", direct_url), ("gateway", gateway_url)):
                figures = _open_loop(url, rate, min(opts.duration, 10.0))
                results.append(
                    Result(
                        scenario=f"passthrough @ {rate:,.0f} req/s",
                        target=target,
                        connections=0,
                        duration_s=min(opts.duration, 10.0),
                        requests_per_s=rate,
                        p50_ms=figures["p50_ms"],
                        p99_ms=figures["p99_ms"],
                        errors=int(figures["errors"]),
                        upstream_per_request=None,
                        latency_ms=opts.latency_ms,
                    )
                )
    return results


# Two windows, as the free/pro/enterprise plans have, high enough never to refuse.
_NEVER_REFUSING = {"anonymous": {"per_minute": 10**9, "per_hour": 10**10}}


def _with(overrides: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(overrides)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _with(merged[key], value)
        else:
            merged[key] = value
    return merged


def ratelimit(opts: Options) -> list[Result]:
    """q2 under rate limits that never refuse: none, in memory, in Redis (32 connections and 1)."""
    results: list[Result] = []
    with redis_server() as redis_url:
        variants: list[tuple[str, dict[str, Any]]] = [
            ("no limits", {}),
            ("memory limits", {"rate_limits": {"plans": _NEVER_REFUSING}}),
            (
                "redis limits",
                {
                    "rate_limits": {"plans": _NEVER_REFUSING},
                    "state": {"backend": "redis", "redis_url": redis_url},
                },
            ),
        ]
        for target, extra in variants:
            variant = replace(opts, overrides=_with(opts.overrides, extra))
            for connections in (opts.connections, 1):
                result = _graphql_run("ratelimit q2", Q2, variant, connections=connections)
                result.target = target
                results.append(result)
    return results


SCENARIOS: dict[str, Callable[[Options], list[Result]]] = {
    "healthz": healthz,
    "q1": q1,
    "q2": q2,
    "ratelimit": ratelimit,
    "cached": cached,
    "passthrough": passthrough,
}


def describe() -> dict[str, Any]:
    return {name: (fn.__doc__ or "").strip() for name, fn in SCENARIOS.items()}
