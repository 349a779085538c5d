"""The authentication failure that says why, to the log and the admin API only."""

from __future__ import annotations

from bff.errors import Unauthenticated

__all__ = ["InvalidCredentials"]


class InvalidCredentials(Unauthenticated):
    """Credentials were presented but rejected.

    ``message`` is what the caller sees and stays vague ("invalid API key") so it tells an
    attacker nothing; ``reason`` says exactly why ("revoked", "unknown prefix", ...) for the
    log and ``POST /admin/authenticate``.
    """

    def __init__(self, message: str, reason: str, *, scheme: str = "Bearer") -> None:
        super().__init__(message, scheme=scheme)
        self.reason = reason
