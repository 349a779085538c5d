"""The sample shop's REST services (users, orders, products, reviews), for demos, tests and
benchmarks of the gateway. They implement ``services.md`` exactly, with deterministic data, and
stand alone: nothing here imports ``bff``, ``clients`` or ``schema``.

- :func:`create_app` builds one service as a pure ASGI app;
- :class:`ServiceServer` serves one in a background thread on a free port (tests);
- :func:`run_all` serves all four in the foreground (``python -m services``, ``bff services``).
"""

from services.app import SERVICE_NAMES, ServiceApp, create_app
from services.server import ServiceServer, run_all

__all__ = ["SERVICE_NAMES", "ServiceApp", "ServiceServer", "create_app", "run_all"]
