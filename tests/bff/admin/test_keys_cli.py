"""``bff keys create|list|revoke`` against the configured store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bff.auth import ApiKeyCache, ApiKeyVerifier, InvalidCredentials
from bff.cli import main
from bff.store import Store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"store: {{url: 'sqlite:///{tmp_path}/keys.db'}}\n"
        "rate_limits:\n"
        "  plans:\n"
        "    anonymous: {per_minute: 60}\n"
        "    free: {per_minute: 60}\n"
        "    pro: {per_minute: 600}\n"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def verify(config: Path, key: str) -> str | None:
    async def check() -> str | None:
        store = Store(f"sqlite:///{config.parent}/keys.db")
        await store.open()
        try:
            verifier = ApiKeyVerifier(ApiKeyCache(store.api_keys.find_by_prefix, ttl=0))
            return (await verifier.verify(key.encode(), "10.1.2.3")).subject
        finally:
            await store.aclose()

    return asyncio.run(check())


def test_create_list_revoke(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("keys", "create", "--config", str(config), "--name", "ios app", "--owner", "mobile"),
        *("--scope", "orders:read", "--scope", "users:read", "--tier", "pro"),
        *("--expires-in-days", "30", "--allow-ip", "10.0.0.0/8", "--json"),
    )
    assert code == 0
    created = json.loads(out)
    assert created["key"].startswith("bff_") and created["scopes"] == ["orders:read", "users:read"]
    assert verify(config, created["key"]) == created["id"]

    code, out, _ = run(capsys, "keys", "list", "-c", str(config))
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["ID", "PREFIX", "NAME"]
    assert created["id"] in out and created["prefix"] in out and created["key"] not in out

    code, out, _ = run(capsys, "keys", "revoke", "-c", str(config), created["id"])
    assert code == 0 and created["id"] in out
    with pytest.raises(InvalidCredentials):
        verify(config, created["key"])
    assert run(capsys, "keys", "list", "-c", str(config))[1].strip() == "no API keys"
    code, out, _ = run(capsys, "keys", "list", "-c", str(config), "--all", "--json")
    assert [k["active"] for k in json.loads(out)] == [False]


def test_plain_create_prints_the_key_once(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "create", "-c", str(config), "--name", "k")
    assert code == 0
    key = out.splitlines()[-1].strip()
    assert key.startswith("bff_") and verify(config, key)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("create", "--name", "k", "--tier", "gold"), 2, "unknown tier 'gold'"),
        (("create", "--name", "bad\nname"), 2, "control"),
        (("create", "--name", "k", "--allow-ip", "nope"), 2, "invalid CIDR"),
        (("create", "--name", "k", "--expires-at", "soon"), 2, "ISO 8601"),
        (("create", "--name", "k", "--expires-at", "2001-01-01"), 2, "future"),
        (("revoke", "key_missing"), 1, "no API key with id 'key_missing'"),
    ],
)
def test_errors_are_one_line(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, _, err = run(capsys, "keys", args[0], "-c", str(config), *args[1:])
    assert got == code
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.servers import free_port

    path = tmp_path / "pg.yaml"
    path.write_text(f"store: {{url: 'postgresql://bff:pw@127.0.0.1:{free_port()}/bff'}}\n")
    code, _, err = run(capsys, "keys", "list", "-c", str(path))
    assert code == 1 and "cannot open the store" in err and "pw@" not in err
