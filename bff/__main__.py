"""``python -m bff`` is the ``bff`` command."""

from bff.cli import main

raise SystemExit(main())
