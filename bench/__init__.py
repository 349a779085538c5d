"""Load scenarios for the gateway: ``python -m bench SCENARIO`` (see docs/performance.md)."""
