"""The ``bff`` command line.

``bff serve``, ``bff demo``, ``bff services``, ``bff config check|schema``,
``bff schema export|check``, ``bff keys create|list|revoke`` and
``bff persisted add|list|remove``. Errors print one line (or one line per configuration problem)
and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from bff.errors import ConfigError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

DEMO_APPS = ("web", "mobile", "iot")
DEMO_ADMIN_TOKEN = "demo-admin-token"


class CommandError(Exception):
    """A failure the CLI reports as one line and exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _demo_config_path() -> Path:
    return Path(str(resources.files("bff").joinpath("demo.yaml")))


def _load(path: str | os.PathLike[str]) -> Any:
    from bff.config import load_config

    return load_config(path)


# -- serve -------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from bff.lifecycle import PidFileError, ServeError, serve

    try:
        return serve(
            args.config,
            host=args.host,
            port=args.port,
            workers=args.workers,
            allow_local_state=args.allow_local_state,
            pidfile=args.pidfile,
        )
    except (ServeError, PidFileError) as exc:
        raise CommandError(str(exc), EXIT_INVALID) from None


def app_from_environment() -> Any:
    """ASGI factory for worker processes: builds the gateway from ``$BFF_CONFIG``."""
    from bff.lifecycle.serve import worker_app

    return worker_app()


def _reload(args: argparse.Namespace) -> int:
    from bff.lifecycle import PidFileError, send_reload

    if args.config and _config_check(args.config, quiet=True) != EXIT_OK:
        return EXIT_INVALID
    try:
        pid = send_reload(pid=args.pid, pidfile=args.pidfile)
    except PidFileError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"sent SIGHUP to bff (pid {pid}): it reloads its configuration file; its log says "
        "what changed, or why nothing did"
    )
    return EXIT_OK


# -- demo --------------------------------------------------------------------------------------


def _wait_healthy(urls: Sequence[str], timeout: float = 15.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    pending = list(urls)
    pause = threading.Event()  # never set: a plain wait between polls
    while pending:
        url = pending[0]
        try:
            with urllib.request.urlopen(url + "/health", timeout=1.0) as answer:
                if answer.status == 200:
                    pending.pop(0)
                    continue
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise CommandError(f"sample service at {url} did not start within {timeout:.0f} s")
        pause.wait(0.1)


def _die_with_parent() -> None:
    """In a child process: receive SIGTERM when the parent exits (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def demo_token(secret: str, subject: str = "1") -> str:
    """A JWT for the demo user: scopes to read and place orders, valid for a day."""
    import jwt

    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": "orders:read orders:write",
        "tier": "pro",
        "iat": now,
        "exp": now + 86400,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def _demo(host: str, port: int, port_base: int, latency_ms: float) -> int:
    import uvicorn

    names = ("users", "orders", "products", "reviews")
    urls = {n: f"http://127.0.0.1:{port_base + i}" for i, n in enumerate(names)}
    for name, url in urls.items():
        os.environ.setdefault(f"{name.upper()}_URL", url)
    os.environ.setdefault("USERS_NEXT_URL", urls["users"])
    demo_dir = os.environ.setdefault("BFF_DEMO_DIR", tempfile.mkdtemp(prefix="bff-demo-"))
    cmd = [sys.executable, "-m", "services", "--port-base", str(port_base)]
    if latency_ms:
        cmd += ["--latency-ms", str(latency_ms)]
    # uvicorn re-raises SIGTERM after its own shutdown, which ends this process before any
    # cleanup code runs: the kernel stops the services when their parent goes, however it goes.
    services = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        _wait_healthy(list(urls.values()))
        config = _load(_demo_config_path())
        registered = _register_demo_operations(config)
        from bff.gateway import build_gateway

        gateway = build_gateway(config)
        base = f"http://{host}:{port}"
        secret = os.environ.get("BFF_JWT_SECRET", "demo-secret-change-me-before-production")
        print("bff demo is starting")
        print(f"  sample services   {', '.join(f'{n} {u}' for n, u in urls.items())}")
        for app in DEMO_APPS:
            print(f"  GraphQL {app:<9} {base}/graphql/{app}")
        print(f"  GraphiQL          {base}/graphql/web (open it in a browser)")
        for op in registered:
            label = f"{op.app} operation"
            print(f"  {label:<17} {op.name or '(anonymous)':<12} sha256 {op.hash}")
        print(f"  REST passthrough  {base}/api/users/42")
        print(f"  health            {base}/healthz  {base}/readyz")
        if config.admin.enabled and config.admin.token:
            # The demo's token is public; one set through BFF_ADMIN_TOKEN is not echoed.
            shown = config.admin.token if config.admin.token == DEMO_ADMIN_TOKEN else None
            print(f"  admin page        {base}{config.admin.path}/")
            print(f"  admin token       {shown or '(the value of BFF_ADMIN_TOKEN)'}")
        print(f"  demo data dir     {demo_dir}")
        print("  a JWT for user 1 (scopes orders:read orders:write), for the Authorization header:")
        print(f"    Bearer {demo_token(secret)}")
        print("  try:")
        print(
            f"    curl -s {base}/graphql/web -H 'content-type: application/json' "
            '-d \'{"query": "{ users(limit: 2) { items { id name } } }"}\''
        )
        sys.stdout.flush()
        uvicorn.run(
            gateway,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            server_header=False,
            log_level="info",
        )
    finally:
        services.send_signal(signal.SIGTERM)
        try:
            services.wait(timeout=10)
        except subprocess.TimeoutExpired:
            services.kill()
    return EXIT_OK


# -- services ----------------------------------------------------------------------------------


def _services(argv: list[str]) -> int:
    try:
        module = importlib.import_module("services.cli")
    except ImportError as exc:
        raise CommandError(f"the sample services are not installed: {exc}") from exc
    return int(module.main(argv) or 0)


# -- config ------------------------------------------------------------------------------------


def _config_check(path: str, *, quiet: bool = False) -> int:
    from bff.config import summarize

    try:
        config = _load(path)
    except ConfigError as exc:
        where = exc.source or path
        print(f"{where}: invalid configuration ({len(exc.problems)} problem(s))", file=sys.stderr)
        for key, message in exc.problems:
            print(f"  {key}: {message}" if key else f"  {message}", file=sys.stderr)
        return EXIT_INVALID
    if quiet:
        return EXIT_OK
    print(f"{path}: OK")
    print(summarize(config))
    return EXIT_OK


def _config_schema() -> int:
    from bff.config import config_json_schema

    print(json.dumps(config_json_schema(), indent=2))
    return EXIT_OK


# -- schema ------------------------------------------------------------------------------------


def _schemas(config_path: str | None, app: str | None) -> dict[str, Any]:
    from bff.graphql import Registry, build_schema

    config = _load(config_path or _demo_config_path())
    apps = list(config.graphql.apps)
    if not apps:
        raise CommandError("the configuration declares no graphql.apps")
    if app is not None:
        if app not in apps:
            raise CommandError(f"unknown app {app!r} (configured: {', '.join(apps)})")
        apps = [app]
    registry = Registry.from_module_names(config.graphql.schema_modules)
    return {name: build_schema(name, registry)._schema for name in apps}


def _schema_export(config_path: str | None, app: str | None, out: str) -> int:
    from bff.graphql.sdl import export_sdl

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, schema in _schemas(config_path, app).items():
        target = out_dir / f"{name}.graphql"
        target.write_text(export_sdl(schema))
        print(f"wrote {target}")
    return EXIT_OK


def _schema_check(config_path: str | None, app: str | None, out: str) -> int:
    from bff.graphql.sdl import diff_sdl, export_sdl

    failed = False
    for name, schema in _schemas(config_path, app).items():
        target = Path(out) / f"{name}.graphql"
        if not target.exists():
            print(f"{name}: {target} is missing (run `bff schema export`)")
            failed = True
            continue
        diff = diff_sdl(target.read_text(), export_sdl(schema))
        if not diff.changed:
            print(f"{name}: up to date with {target}")
            continue
        failed = True
        print(f"{name}: the code's schema differs from {target}")
        for line in diff.breaking:
            print(f"  breaking  {line}")
        for line in diff.safe:
            print(f"  safe      {line}")
    return EXIT_FAILED if failed else EXIT_OK


# -- keys --------------------------------------------------------------------------------------


_KEY_COLUMNS = ("ID", "PREFIX", "NAME", "OWNER", "TIER", "SCOPES", "ACTIVE", "EXPIRES", "USED")


def _key_row(key: dict[str, Any]) -> tuple[str, ...]:
    def when(t: float | None) -> str:
        return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    return (
        key["id"],
        key["prefix"],
        key["name"],
        key["owner"] or "-",
        key["tier"],
        " ".join(key["scopes"]) or "-",
        "yes" if key["active"] else "no",
        when(key["expires_at"]),
        when(key["last_used"]),
    )


def _keys(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_keys_async(args))


async def _keys_async(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from bff.auth import ApiKeyManager, KeySpec, key_events_for
    from bff.errors import BadRequest
    from bff.store import Store, StoreError

    config = _load(args.config)
    store = Store.from_config(config.store)
    events = key_events_for(config)  # a revocation reaches running gateways via Redis, if any
    manager = ApiKeyManager(store, events, tiers=list(config.rate_limits.plans) or None)
    try:
        await store.open()
        if args.keys_command == "create":
            expires_at: float | None = None
            if args.expires_at:
                try:
                    when = datetime.fromisoformat(args.expires_at)
                except ValueError:
                    raise CommandError(
                        f"--expires-at: not an ISO 8601 time: {args.expires_at!r}", EXIT_INVALID
                    ) from None
                expires_at = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
            elif args.expires_in_days is not None:
                expires_at = time.time() + args.expires_in_days * 86400
            spec = KeySpec(
                name=args.name,
                owner=args.owner,
                scopes=tuple(args.scope or ()),
                tier=args.tier,
                expires_at=expires_at,
                allowed_ips=tuple(args.allow_ip or ()),
            )
            record, plaintext = await manager.create(spec)
            if args.json:
                print(json.dumps({**record.public(), "key": plaintext}, indent=2))
            else:
                print(f"created API key {record.id} ({record.prefix}...) named {record.name!r}")
                print("the key, shown this once (only its hash is stored):")
                print(f"  {plaintext}")
            return EXIT_OK
        if args.keys_command == "list":
            records = await manager.list(
                limit=args.limit, owner=args.owner, active=None if args.all else True
            )
            if args.json:
                print(json.dumps([r.public() for r in records], indent=2))
                return EXIT_OK
            if not records:
                print("no API keys")
                return EXIT_OK

            rows = [_KEY_COLUMNS, *(_key_row(r.public()) for r in records)]
            widths = [max(len(row[i]) for row in rows) for i in range(len(_KEY_COLUMNS))]
            for row in rows:
                print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            return EXIT_OK
        if args.keys_command == "revoke":
            revoked = await manager.revoke(args.key_id)
            if revoked is None:
                raise CommandError(f"no API key with id {args.key_id!r}")
            print(f"revoked API key {revoked.id} ({revoked.prefix}...)")
            return EXIT_OK
        raise CommandError("usage: bff keys create|list|revoke --config FILE", EXIT_INVALID)
    except BadRequest as exc:
        raise CommandError(exc.message, EXIT_INVALID) from None
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await events.aclose()
        await store.aclose()


# -- persisted operations ----------------------------------------------------------------------


_DEMO_OPERATIONS = "demo_operations"


def _persisted(args: argparse.Namespace) -> int:
    import asyncio

    config = _load(args.config or _demo_config_path())
    apps = list(config.graphql.apps)
    app = getattr(args, "app", None)
    if app is not None and app not in apps:
        raise CommandError(f"unknown app {app!r} (configured: {', '.join(apps)})", EXIT_INVALID)
    documents: list[tuple[str, str]] = []
    for name in getattr(args, "files", ()):
        try:
            documents.append((name, Path(name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {name}: {exc}", EXIT_INVALID) from None
    return asyncio.run(_persisted_async(args, config, app or "", documents))


async def _persisted_async(
    args: argparse.Namespace, config: Any, app: str, documents: list[tuple[str, str]]
) -> int:
    from bff.store import Store, StoreError

    store = Store.from_config(config.store)
    try:
        await store.open()
        repository = store.persisted_operations
        if args.persisted_command == "add":
            return await _register(config, app, documents, repository)
        if args.persisted_command == "list":
            records = await repository.list(app=app or None)
            if args.json:
                rows = [{"app": r.app, "hash": r.hash, "name": r.name} for r in records]
                print(json.dumps(rows, indent=2))
            elif not records:
                print("no registered operations")
            for r in [] if args.json else records:
                print(f"{r.hash}  {r.app:<8} {r.name or '(anonymous)'}")
            return EXIT_OK
        if args.persisted_command == "remove":
            if not await repository.delete(app, args.hash.lower()):
                raise CommandError(f"no operation {args.hash} is registered for {app}")
            print(f"removed {args.hash.lower()} from {app}")
            return EXIT_OK
        raise CommandError("usage: bff persisted add|list|remove", EXIT_INVALID)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await store.aclose()


async def _register(
    config: Any, app: str, documents: list[tuple[str, str]], repository: Any
) -> int:
    """Vet and store each document; prints each hash (stdout) and warnings (stderr)."""
    from bff.graphql import Registry, build_schema
    from bff.graphql.operations import vet

    app_config = config.graphql.apps[app]
    schema = build_schema(app, Registry.from_module_names(config.graphql.schema_modules))._schema
    if app_config.persisted_queries == "off":
        print(f"warning: app {app} has persisted_queries: off and ignores them", file=sys.stderr)
    vetted = []
    for name, text in documents:
        vetting = vet(schema, text, app_config)
        if vetting.errors:
            for error in vetting.errors:
                print(f"{name}: {error}", file=sys.stderr)
            raise CommandError(f"{name} is not a valid operation for {app}", EXIT_INVALID)
        for warning in vetting.warnings:
            print(f"warning: {name}: {warning}", file=sys.stderr)
        vetted.append((vetting, text))
    for vetting, text in vetted:
        await repository.put(app, vetting.hash, text, vetting.name)
        print(vetting.hash)
    return EXIT_OK


def _register_demo_operations(config: Any) -> list[Any]:
    """Register the bundled operations of the demo's allow-listed apps (bff/demo_operations);
    returns every registered operation's record."""
    import asyncio

    from bff.store import Store

    root = resources.files("bff").joinpath(_DEMO_OPERATIONS)

    async def register() -> list[Any]:
        store = Store.from_config(config.store)
        try:
            await store.open()
            for app in config.graphql.apps:
                folder = root.joinpath(app)
                if not folder.is_dir():
                    continue
                documents = [
                    (f.name, f.read_text(encoding="utf-8"))
                    for f in sorted(folder.iterdir(), key=lambda f: f.name)
                    if f.name.endswith(".graphql")
                ]
                with contextlib.redirect_stdout(None):  # the hashes: the banner lists them
                    await _register(config, app, documents, store.persisted_operations)
            return await store.persisted_operations.list()
        finally:
            await store.aclose()

    return asyncio.run(register())


# -- the parser --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bff",
        description="bff: a Backend-for-Frontend GraphQL aggregation gateway.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gateway from a configuration file")
    p.add_argument("--config", "-c", required=True, help="the gateway YAML file")
    p.add_argument("--host", help="listen address (default: listen.host of the file)")
    p.add_argument("--port", type=int, help="listen port (default: listen.port of the file)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--allow-local-state",
        action="store_true",
        help="allow --workers > 1 with state.backend: memory (limits and caches per process)",
    )
    p.add_argument("--pidfile", help="write the process id here (for bff reload)")

    p = sub.add_parser(
        "reload",
        help="make a running bff serve reload its configuration file (SIGHUP)",
        description="Sends SIGHUP to bff serve: it re-reads its file and swaps routes, upstreams "
        "and rate limits without a restart; an invalid file is rejected (logged) and the running "
        "configuration kept.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=int, help="the process id of bff serve")
    target.add_argument("--pidfile", help="the file given to bff serve --pidfile")
    p.add_argument("--config", "-c", help="validate this file first (exit 2 when invalid)")

    p = sub.add_parser(
        "demo",
        help="start the four sample services and the gateway with the bundled demo config",
        description="Starts users, orders, products and reviews on --port-base.. and the gateway "
        "on --port, prints the URLs (GraphiQL at /graphql/web) and a ready JWT. Ctrl-C stops all.",
    )
    p.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    p.add_argument("--port-base", type=int, default=9101, help="first sample-service port")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency the services add")

    sub.add_parser(
        "services",
        help="run the sample REST services (see `bff services --help`)",
        add_help=False,
    )

    p = sub.add_parser("config", help="validate a configuration or print its JSON Schema")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    c = csub.add_parser("check", help="validate FILE: errors exit 2, else print a summary")
    c.add_argument("file", help="the gateway YAML file")
    csub.add_parser("schema", help="print the JSON Schema of the configuration file")

    p = sub.add_parser("schema", help="export or check the GraphQL SDL of each app")
    ssub = p.add_subparsers(dest="schema_command", metavar="ACTION")
    for action, text in (
        ("export", "write <out>/<app>.graphql for each app"),
        ("check", "exit 1 when the code's schema differs from <out>/<app>.graphql"),
    ):
        s = ssub.add_parser(action, help=text)
        s.add_argument("--config", "-c", help="gateway YAML (default: the bundled demo config)")
        s.add_argument("--app", help="only this app")
        s.add_argument("--out", default="schema", help="directory of the SDL files (schema/)")

    p = sub.add_parser("keys", help="create, list or revoke API keys in the configured store")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    k = ksub.add_parser("create", help="create a key and print it (shown once)")
    k.add_argument("--config", "-c", required=True, help="the gateway YAML file")
    k.add_argument("--name", required=True, help="what the key is for")
    k.add_argument("--owner", help="who holds it")
    k.add_argument("--scope", action="append", help="a scope to grant (repeatable)")
    k.add_argument("--tier", default="free", help="rate-limit tier (default free)")
    k.add_argument("--expires-at", help="ISO 8601 time after which the key fails (UTC if no zone)")
    k.add_argument("--expires-in-days", type=float, help="or: days from now until it fails")
    k.add_argument("--allow-ip", action="append", help="a CIDR it may be used from (repeatable)")
    k.add_argument("--json", action="store_true", help="print the record and key as JSON")
    k = ksub.add_parser("list", help="list keys (active ones unless --all)")
    k.add_argument("--config", "-c", required=True, help="the gateway YAML file")
    k.add_argument("--owner", help="only this owner's keys")
    k.add_argument("--all", action="store_true", help="include revoked keys")
    k.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    k.add_argument("--json", action="store_true", help="print JSON")
    k = ksub.add_parser("revoke", help="revoke a key by id")
    k.add_argument("--config", "-c", required=True, help="the gateway YAML file")
    k.add_argument("key_id", help="the key's id (key_...)")

    p = sub.add_parser("persisted", help="register GraphQL operations for allow-listed apps")
    psub = p.add_subparsers(dest="persisted_command", metavar="ACTION")
    q = psub.add_parser("add", help="vet and register operations; prints each one's hash")
    q.add_argument("files", nargs="+", metavar="FILE.graphql", help="one operation document each")
    q.add_argument("--app", required=True, help="the app that runs them (e.g. iot)")
    q = psub.add_parser("list", help="list registered operations")
    q.add_argument("--app", help="only this app's")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = psub.add_parser("remove", help="unregister an operation by hash")
    q.add_argument("hash", help="the operation's sha256 (hex)")
    q.add_argument("--app", required=True, help="the app it is registered for")
    for q in psub.choices.values():
        q.add_argument("--config", "-c", help="gateway YAML (default: the bundled demo config)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bff`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["services"]:
        return _run(lambda: _services(args_list[1:]))
    parser = _parser()
    args = parser.parse_args(args_list)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _run(lambda: _serve(args))
    if args.command == "reload":
        return _run(lambda: _reload(args))
    if args.command == "demo":
        return _run(lambda: _demo(args.host, args.port, args.port_base, args.latency_ms))
    if args.command == "config":
        if args.config_command == "check":
            return _run(lambda: _config_check(args.file))
        if args.config_command == "schema":
            return _run(_config_schema)
    if args.command == "schema":
        if args.schema_command == "export":
            return _run(lambda: _schema_export(args.config, args.app, args.out))
        if args.schema_command == "check":
            return _run(lambda: _schema_check(args.config, args.app, args.out))
    if args.command == "keys" and args.keys_command:
        return _run(lambda: _keys(args))
    if args.command == "persisted" and args.persisted_command:
        return _run(lambda: _persisted(args))
    parser.print_help()
    return EXIT_INVALID


def _run(action: Any) -> int:
    from bff.graphql import RegistryError

    try:
        return int(action())
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (CommandError, RegistryError) as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return getattr(exc, "code", EXIT_FAILED)
    except OSError as exc:
        print(f"bff: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("BFF_DEBUG"):
            raise
        print(
            f"bff: unexpected error: {type(exc).__name__}: {exc} (BFF_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
