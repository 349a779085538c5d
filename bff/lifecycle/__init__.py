"""A gateway process's life: serving (one process or workers), signals, reload, shutdown.

- :func:`serve`: ``bff serve`` (uvicorn, ``--workers``, ``--pidfile``, the drain timeout);
- :class:`ProcessControl`: ``SIGHUP`` reloads the configuration file, ``SIGTERM`` drains;
- :func:`send_reload`: ``bff reload``;
- :class:`PidFile`.

See docs/deployment.md.
"""

from bff.lifecycle.control import send_reload
from bff.lifecycle.pidfile import PidFile, PidFileError, read_pid
from bff.lifecycle.serve import CONFIG_ENV, ServeError, check_workers, serve, uvicorn_options
from bff.lifecycle.signals import ProcessControl

__all__ = [
    "CONFIG_ENV",
    "PidFile",
    "PidFileError",
    "ProcessControl",
    "ServeError",
    "check_workers",
    "read_pid",
    "send_reload",
    "serve",
    "uvicorn_options",
]
