"""The pidfile of ``bff serve --pidfile FILE``, and reading it back for ``bff reload``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

__all__ = ["PidFile", "PidFileError", "read_pid"]


class PidFileError(Exception):
    """The pidfile cannot be written or read (the message is one line for the CLI)."""


def read_pid(path: str | os.PathLike[str]) -> int:
    """The process id recorded in ``path``."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise PidFileError(f"{os.fspath(path)}: no such pidfile (is bff serve running?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PidFileError(f"{os.fspath(path)}: cannot read the pidfile ({exc})") from None
    if not text.isdigit() or int(text) <= 0:
        raise PidFileError(f"{os.fspath(path)}: not a pidfile (expected a process id)")
    return int(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class PidFile:
    """``with PidFile(path):`` records this process's id in ``path`` and removes the file on
    the way out (if it still holds this id). Refuses to start over a live process's pidfile."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.pid = os.getpid()

    def __enter__(self) -> PidFile:
        other: int | None = None
        with contextlib.suppress(PidFileError):
            other = read_pid(self.path)  # a stale or broken pidfile is simply replaced
        if other is not None and other != self.pid and _alive(other):
            raise PidFileError(
                f"{self.path}: process {other} is running with this pidfile "
                "(stop it, or give another --pidfile)"
            )
        temporary = self.path.with_name(f".{self.path.name}.{self.pid}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(f"{self.pid}\n", encoding="ascii")
            os.replace(temporary, self.path)  # never a half-written pidfile
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise PidFileError(f"{self.path}: cannot write the pidfile ({exc.strerror})") from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Delete the pidfile if it is still this process's."""
        with contextlib.suppress(PidFileError, OSError):
            if read_pid(self.path) == self.pid:
                self.path.unlink()
