"""``python -m services``: see :mod:`services.cli`."""

from services.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
