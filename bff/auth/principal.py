"""Who is calling: the result of authentication, carried through a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ANONYMOUS", "PRINCIPAL_KEY", "Principal"]

#: Key under which edge layers put the request's :class:`Principal` in the ASGI scope.
PRINCIPAL_KEY = "bff.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request.

    ``subject`` is the JWT ``sub`` for users and the key id for API keys; ``tier`` picks the
    rate-limit plan; ``client_ip`` is the socket peer (or the trusted ``X-Forwarded-For`` hop).
    """

    kind: Literal["anonymous", "user", "api_key"] = "anonymous"
    subject: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    tier: str = "anonymous"
    client_ip: str | None = None
    claims: dict[str, object] | None = field(default=None, compare=False, repr=False)

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    def has_scopes(self, required: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        """True when every scope in ``required`` was granted."""
        return all(s in self.scopes for s in required)

    def with_client_ip(self, client_ip: str | None) -> Principal:
        """This principal as seen from ``client_ip`` (cached principals are shared)."""
        return Principal(self.kind, self.subject, self.scopes, self.tier, client_ip, self.claims)


ANONYMOUS = Principal()
