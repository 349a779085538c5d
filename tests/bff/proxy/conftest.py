"""Fault servers for the tests of this package (real upstreams the tests control)."""

from tests.support.fault_server import fault, fault_servers

__all__ = ["fault", "fault_servers"]
