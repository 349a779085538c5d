"""``bff serve`` for real: a gateway in a subprocess, on a free port, with its log kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.support.servers import free_port

__all__ = ["GatewayProcess", "write_config"]

_ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as the YAML file ``path`` (atomically: a reload never reads half)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    os.replace(temporary, path)
    return path


class GatewayProcess:
    """``with GatewayProcess(config_file) as gw: httpx.get(gw.url + "/healthz")``.

    The port comes from ``--port`` (a free one), the pidfile sits next to the log in a temporary
    directory; ``log()`` is everything the process wrote.
    """

    def __init__(
        self,
        config: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.config = config
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="bff-serve-")
        self.pidfile = Path(self._dir.name) / "bff.pid"
        self.log_path = Path(self._dir.name) / "bff.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bff",
            "serve",
            "--config",
            str(self.config),
            "--port",
            str(self.port),
            "--pidfile",
            str(self.pidfile),
            *self.args,
        ]

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> GatewayProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bff serve exited ({self.process.returncode}):\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bff serve did not start within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 10.0, *, after: int = 0) -> str:
        """Wait until ``text`` appears in the log (past offset ``after``); the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log[after:]:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the log within {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not go in time; the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._dir.cleanup()
