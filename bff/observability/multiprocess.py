"""Metrics across worker processes: prometheus_client's multi-process mode.

With ``bff serve --workers N`` every worker writes its metric values to memory-mapped files in
one directory, ``PROMETHEUS_MULTIPROC_DIR``, and the metrics endpoint (whichever worker answers
a scrape) merges them: counters and histograms add up, the in-flight gauge adds up over live
workers, breaker states take the worst, target health the most pessimistic.

prometheus_client reads the variable when it is first imported, so it must be set before any
worker starts: :func:`prepare_multiprocess_metrics` does that for the CLI.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
from collections.abc import MutableMapping

__all__ = ["MULTIPROC_ENV", "prepare_multiprocess_metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_metrics(environ: MutableMapping[str, str] | None = None) -> str:
    """Give the workers about to start a clean shared metrics directory; returns its path.

    An existing ``PROMETHEUS_MULTIPROC_DIR`` is kept but emptied of the previous run's files
    (stale files would add old counts to new ones); otherwise a temporary directory is made,
    set in ``environ`` (default ``os.environ``, which the workers inherit) and removed when
    this process exits.
    """
    env = os.environ if environ is None else environ
    path = env.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return path
    path = tempfile.mkdtemp(prefix="bff-metrics-")
    env[MULTIPROC_ENV] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
