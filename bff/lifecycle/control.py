"""``bff reload``: ask a running ``bff serve`` to reload its configuration file."""

from __future__ import annotations

import os
import signal

from bff.lifecycle.pidfile import PidFileError, read_pid

__all__ = ["send_reload"]


def send_reload(*, pid: int | None = None, pidfile: str | os.PathLike[str] | None = None) -> int:
    """Send ``SIGHUP`` to the gateway (by ``pid`` or through its ``pidfile``); its pid.

    Raises :class:`PidFileError` (no such process, unreadable pidfile) with a one-line message.
    """
    if pid is None:
        if pidfile is None:
            raise PidFileError("give --pid PID or --pidfile FILE")
        pid = read_pid(pidfile)
    if pid <= 0:
        raise PidFileError(f"invalid process id {pid}")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        where = f" (from {os.fspath(pidfile)})" if pidfile is not None else ""
        raise PidFileError(f"no process {pid}{where}: is bff serve running?") from None
    except PermissionError:
        raise PidFileError(f"not allowed to signal process {pid}") from None
    return pid
