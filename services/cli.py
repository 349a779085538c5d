"""Command line of the sample services: ``python -m services`` (and ``bff services``)."""

from __future__ import annotations

import argparse
import sys

from services.app import SERVICE_NAMES
from services.server import run_all

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
Serve the sample shop's REST services (users, orders, products, reviews) in the foreground,
on PORT_BASE, PORT_BASE+1, PORT_BASE+2 and PORT_BASE+3 respectively, until Ctrl-C or SIGTERM.
Besides its own routes, every service answers GET /health, GET /_stats, POST /_reset and
GET|POST /_latency?ms=N (see docs/services.md)."""


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown service(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(SERVICE_NAMES)}"
        )
    return names


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _latency(value: str) -> float:
    ms = float(value)
    if not ms >= 0 or ms == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return ms


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``prog`` names the command in usage lines."""
    parser = argparse.ArgumentParser(
        prog=prog or "python -m services",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=9101,
        metavar="PORT",
        help="port of users; orders, products, reviews follow (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-ms",
        type=_latency,
        default=0.0,
        metavar="MS",
        help="delay every request by MS milliseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        type=_names,
        default=None,
        metavar="NAMES",
        help="comma-separated subset to run, e.g. users,orders (ports stay the same)",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes sharing each port via SO_REUSEPORT, for benchmarks "
        "(default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), print the URLs, serve; return the exit code."""
    args = build_parser(prog).parse_args(argv)
    try:
        run_all(
            host=args.host,
            port_base=args.port_base,
            latency_ms=args.latency_ms,
            only=args.only,
            processes=args.processes,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
