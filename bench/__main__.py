"""``python -m bench SCENARIO [...]``: run load scenarios and print a table (and JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench.runner import print_results
from bench.scenarios import SCENARIOS, Options, describe


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value)
    return out


def main() -> None:
    if sys.argv[1:2] == ["soak"]:  # its own options: python -m bench soak --help
        from bench.soak import main as soak

        raise SystemExit(soak(sys.argv[2:]))
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the gateway: sample services and wrk on CPU 1, the gateway "
        "on CPU 0. Scenarios: " + "; ".join(f"{k}: {v}" for k, v in describe().items()),
    )
    parser.add_argument("scenarios", nargs="+", choices=sorted(SCENARIOS), metavar="SCENARIO")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="upstream latency")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--service-processes",
        type=int,
        default=1,
        help="processes per sample service (SO_REUSEPORT)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a key of the generated gateway config, e.g. graphql.compiled_plans=false",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    opts = Options(
        args.latency_ms,
        args.duration,
        args.connections,
        args.service_processes,
        overrides=_overrides(args.set),
    )
    results = []
    for name in args.scenarios:
        results.extend(SCENARIOS[name](opts))
    print_results(results, args.json)


if __name__ == "__main__":
    main()
