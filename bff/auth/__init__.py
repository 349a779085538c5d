"""Authentication: who the caller is (JWT, API keys) and what they may do (scopes)."""

from bff.auth.principal import ANONYMOUS, PRINCIPAL_KEY, Principal

__all__ = ["ANONYMOUS", "PRINCIPAL_KEY", "Principal"]
