"""The ``bff`` command line: exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bff.cli import main

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "gateway.example.yaml"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"


def test_config_check_accepts_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    if REFERENCE.exists():
        shutil.copy(REFERENCE, path)
    else:
        path.write_text("upstreams: {users: {targets: ['http://127.0.0.1:9101']}}\n")
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "upstreams" in out


def test_config_check_lists_problems_with_key_paths_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "upstreams:\n"
        "  users: {targets: ['http://127.0.0.1:9101'], timeout: {conect: 1}}\n"
        "routes:\n"
        "  - {id: a, path: /api/a, upstream: nowhere}\n"
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "upstreams.users.timeout" in err
    assert "conect" in err
    assert "Traceback" not in err


def test_config_check_of_a_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


def test_config_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "upstreams" in schema["properties"]


def test_schema_check_passes_on_the_committed_files_and_fails_on_a_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "check", "--out", str(SCHEMA_DIR)]) == 0
    for app in ("web", "mobile", "iot"):
        shutil.copy(SCHEMA_DIR / f"{app}.graphql", tmp_path / f"{app}.graphql")
    web = tmp_path / "web.graphql"
    web.write_text(web.read_text().replace("  email: String!\n", ""))
    capsys.readouterr()
    assert main(["schema", "check", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "safe      FIELD_ADDED: Field User.email was added." in out


def test_unknown_app_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "export", "--app", "tv", "--out", "/nonexistent"]) == 1
    err = capsys.readouterr().err
    assert "unknown app 'tv'" in err and "Traceback" not in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "demo", "services", "config", "schema"):
        assert command in out
