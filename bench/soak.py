"""``python -m bench soak``: a long mixed load with the gateway's memory sampled every second.

200,000 requests by default (bounded by ``--max-seconds`` too), sent by wrk over 16 connections
to ``bff serve`` on 127.0.0.1, in a fixed rotation of 20:

- 1 GraphQL q1 (4 upstream requests) and 6 q2 (1 upstream request) on ``/graphql/web``;
- 9 passthrough GETs of ``/api/users/<1..100>`` and 1 list ``/api/users?limit=5&offset=<n>``;
- errors: 1 gateway 404 on a path never seen before (``/api/nope/<n>``), 1 upstream 404
  (``/api/users/9999999``) and 1 GraphQL validation error, cycling through 1,000 distinct
  invalid documents (``--distinct-documents 0``: every one new).

The never-seen paths are there on purpose: nothing a client sends may grow the gateway's memory
without bound (metric labels, caches, rolling windows). Never-seen documents do fill the parsed
document cache, up to its bound: that flood is a separate run (``--distinct-documents 0``).

The gateway's resident set (``VmRSS``) is read from ``/proc`` every second; after warm-up (the
first 20% of the run, at least 20 s) it must stay flat: the last samples within 5% (or 8 MB) of
those at the end of warm-up. The report is a markdown section with a table and a sparkline of
the curve, for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.runner import (
    LOAD_CPU,
    _pinned,
    cpu_seconds,
    ensure_wrk,
    gateway,
    gateway_config,
    read_stats,
    sample_services,
)
from bench.scenarios import Q1, Q2

__all__ = ["SoakResult", "main", "run_soak"]

_SPARK = "▁▂▃▄▅▆▇█"

_LUA = r"""
local q1 = {q1}
local q2 = {q2}
local json = {{["content-type"] = "application/json"}}
local limit = {limit}
local marker = {marker}
local sent = 0
local answered = 0
statuses = {{}}

request = function()
  sent = sent + 1
  local k = sent % 20
  if k == 0 then
    return wrk.format("POST", "/graphql/web", json, q1)
  elseif k <= 6 then
    return wrk.format("POST", "/graphql/web", json, q2)
  elseif k <= 15 then
    return wrk.format("GET", "/api/users/" .. (sent % 100 + 1))
  elseif k == 16 then
    return wrk.format("GET", "/api/users?limit=5&offset=" .. (sent % 50))
  elseif k == 17 then
    return wrk.format("GET", "/api/nope/" .. sent)
  elseif k == 18 then
    return wrk.format("GET", "/api/users/9999999")
  else
    local n = {distinct} > 0 and sent % {distinct} or sent
    return wrk.format("POST", "/graphql/web", json, '{{"query": "{{ nope' .. n .. ' }}"}}')
  end
end

response = function(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if answered == limit then
    -- wrk always runs its full duration: tell the runner, which interrupts it.
    local f = io.open(marker, "w")
    f:write("done")
    f:close()
  end
end

local threads = {{}}
setup = function(thread)
  table.insert(threads, thread)
end

done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("STATUS %d %d\n", status, count))
    end
  end
end
"""


@dataclass
class SoakResult:
    """One soak run: what was sent, how it went, and the memory curve."""

    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: int
    gateway_cpu_ms: float
    upstream_requests: int
    warmup_s: float
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    rss_after_warmup_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    slope_mb_per_min: float = 0.0
    flat: bool = False


class RssSampler(threading.Thread):
    """Reads a process's ``VmRSS`` every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop_event.is_set():
            rss = self.rss_mb()
            if rss is not None:
                self.samples.append((round(time.monotonic() - started, 1), round(rss, 1)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def _wrk(
    url: str, requests: int, max_seconds: float, connections: int, distinct_documents: int
) -> dict[str, Any]:
    marker = Path(tempfile.mkdtemp(prefix="bff-soak-wrk-")) / "done"
    script = _LUA.format(
        q1=json.dumps(json.dumps({"query": Q1})),
        q2=json.dumps(json.dumps({"query": Q2})),
        limit=requests,
        marker=json.dumps(str(marker)),
        distinct=distinct_documents,
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    cmd = [
        ensure_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max_seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        lua,
        url,
    ]
    proc = subprocess.Popen(_pinned(LOAD_CPU, cmd), stdout=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not marker.exists():
            time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # wrk stops early on SIGINT, and reports
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.unlink(lua)
        marker.unlink(missing_ok=True)
        marker.parent.rmdir()
    statuses = {s: int(n) for s, n in re.findall(r"STATUS (\d+) (\d+)", out)}
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors = sum(int(g) for g in m.groups())
    return {
        "total": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "statuses": statuses,
        "socket_errors": errors,
    }


def _median_rss(samples: list[tuple[float, float]]) -> float:
    return statistics.median(r for _, r in samples) if samples else 0.0


def analyse(result: SoakResult) -> SoakResult:
    """Fill in the memory verdict from the samples."""
    samples = result.rss_mb
    after = [(t, r) for t, r in samples if t >= result.warmup_s]
    if len(after) < 10:
        return result
    result.rss_after_warmup_mb = _median_rss(after[:5])
    result.rss_end_mb = _median_rss(after[-5:])
    result.rss_max_mb = max(r for _, r in after)
    times = [t for t, _ in after]
    values = [r for _, r in after]
    result.slope_mb_per_min = round(statistics.linear_regression(times, values).slope * 60, 3)
    allowed = max(8.0, 0.05 * result.rss_after_warmup_mb)
    result.flat = result.rss_end_mb - result.rss_after_warmup_mb <= allowed
    return result


def run_soak(
    requests: int, max_seconds: float, connections: int, distinct_documents: int = 1000
) -> SoakResult:
    overrides = {
        "store": {"url": f"sqlite:///{tempfile.mkdtemp(prefix='bff-soak-')}/bff.db"},
        "admin": {"token": "soak-admin-token"},
        "observability": {"access_log": "json", "log_level": "warning"},
    }
    with (
        sample_services(0.0) as urls,
        gateway(gateway_config(urls, overrides)) as gw,
    ):
        sampler = RssSampler(gw.pid)
        cpu_before = cpu_seconds(gw.pid)
        started = time.monotonic()
        sampler.start()
        try:
            stats = _wrk(gw.url, requests, max_seconds, connections, distinct_documents)
        finally:
            sampler.stop()
        seconds = time.monotonic() - started
        cpu = cpu_seconds(gw.pid) - cpu_before
        upstream = sum(read_stats(urls).values())
    total = stats["total"]
    result = SoakResult(
        requests=total,
        seconds=round(seconds, 1),
        requests_per_s=round(total / seconds, 1),
        p50_ms=stats["p50"],
        p99_ms=stats["p99"],
        statuses=stats["statuses"],
        socket_errors=stats["socket_errors"],
        gateway_cpu_ms=round(cpu / max(total, 1) * 1000, 3),
        upstream_requests=upstream,
        warmup_s=max(20.0, round(seconds * 0.2, 1)),
        rss_mb=sampler.samples,
    )
    return analyse(result)


def sparkline(values: list[float], width: int = 60) -> str:
    if not values:
        return ""
    step = max(1, len(values) // width)
    points = [statistics.mean(values[i : i + step]) for i in range(0, len(values), step)]
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(_SPARK[min(7, int((p - low) / span * 8))] for p in points)


def report(result: SoakResult, command: str) -> str:
    """The markdown section for docs/performance.md."""
    rows = []
    samples = result.rss_mb
    marks = sorted({int(len(samples) * i / 10) for i in range(10)} | {len(samples) - 1})
    for i in marks:
        t, rss = samples[i]
        phase = "warm-up" if t < result.warmup_s else ""
        rows.append(f"| {t:g} | {rss:.1f} | {phase} |")
    statuses = ", ".join(f"{n:,} x {s}" for s, n in sorted(result.statuses.items()))
    values = [r for _, r in samples]
    verdict = "flat" if result.flat else "GROWING"
    return "\n".join(
        [
            "```bash",
            command,
            "```",
            "",
            f"{result.requests:,} requests in {result.seconds:g} s ({result.requests_per_s:,.0f} "
            f"req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"{result.socket_errors} socket errors); answers: {statuses}; "
            f"{result.upstream_requests:,} upstream requests; gateway CPU "
            f"{result.gateway_cpu_ms:.3f} ms/request.",
            "",
            f"Gateway RSS, one sample per second ({len(samples)} samples, "
            f"{min(values):.1f} to {max(values):.1f} MB):",
            "",
            "```",
            sparkline(values),
            "```",
            "",
            "| seconds | RSS MB | |",
            "|---|---|---|",
            *rows,
            "",
            f"After warm-up ({result.warmup_s:g} s): {result.rss_after_warmup_mb:.1f} MB; at the "
            f"end {result.rss_end_mb:.1f} MB (max {result.rss_max_mb:.1f}); slope "
            f"{result.slope_mb_per_min:+.2f} MB/min: **{verdict}**.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench soak",
        description="A long mixed load (GraphQL q1/q2, passthrough GETs, errors) with the "
        "gateway's RSS sampled every second; memory must stay flat after warm-up.",
    )
    parser.add_argument("--requests", type=int, default=200_000, help="requests to send")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop after this long")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--distinct-documents",
        type=int,
        default=1000,
        help="invalid GraphQL documents cycled through (0: every one new, a flood that fills "
        "the document cache to its bound)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run_soak(args.requests, args.max_seconds, args.connections, args.distinct_documents)
    command = "python -m bench soak" + "".join(
        f" {flag} {value}"
        for flag, value, default in (
            ("--requests", args.requests, 200_000),
            ("--distinct-documents", args.distinct_documents, 1000),
        )
        if value != default
    )
    print(report(result, command))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.flat else 1
