"""From verified claims to a :class:`Principal`, refusing identities that could inject headers.

A subject or scope travels to upstreams in ``X-Auth-Subject`` / ``X-Auth-Scopes``, so it must be
short (at most 256 characters) and printable: a control character (CR, LF, NUL, ...) or any other
non-printable character makes the whole credential invalid, whoever signed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from bff.auth.errors import InvalidCredentials
from bff.auth.principal import Principal

__all__ = [
    "MAX_IDENTITY_CHARS",
    "check_scopes",
    "check_subject",
    "check_tier",
    "is_valid_scope",
    "is_valid_subject",
    "principal_from_claims",
]

MAX_IDENTITY_CHARS = 256
_TIER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def is_valid_subject(value: object) -> bool:
    """A non-empty printable string of at most 256 characters (spaces allowed)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_IDENTITY_CHARS and value.isprintable()


def is_valid_scope(value: object) -> bool:
    """Like a subject, without spaces (scopes are space-separated)."""
    return is_valid_subject(value) and " " not in value  # type: ignore[operator]


def check_subject(value: object, what: str = "subject") -> str:
    """``value`` if it is a valid subject; ``ValueError`` saying why otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_IDENTITY_CHARS:
        raise ValueError(f"{what} is longer than {MAX_IDENTITY_CHARS} characters")
    if not value.isprintable():
        raise ValueError(f"{what} contains control or non-printable characters")
    return value


def check_scopes(values: Iterable[object]) -> tuple[str, ...]:
    """The scopes, de-duplicated in order; ``ValueError`` naming the first invalid one."""
    out: dict[str, None] = {}
    for value in values:
        if not is_valid_scope(value):
            shown = repr(value)[:60]
            raise ValueError(
                f"invalid scope {shown}: scopes are 1-{MAX_IDENTITY_CHARS} printable characters "
                "without spaces"
            )
        out[value] = None  # type: ignore[index]
    return tuple(out)


def check_tier(value: object) -> str:
    """A tier name: 1-64 letters, digits, ``_``, ``.`` or ``-``."""
    if not isinstance(value, str) or not _TIER.fullmatch(value):
        raise ValueError("tier must be 1-64 letters, digits, '_', '.' or '-'")
    return value


def _scopes_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[object] = []
    scope = claims.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise ValueError("the 'scope' claim must be a space-separated string")
        found.extend(s for s in scope.split(" ") if s)
    scp = claims.get("scp")
    if scp is not None:
        if isinstance(scp, str):
            found.extend(s for s in scp.split(" ") if s)
        elif isinstance(scp, list):
            found.extend(scp)
        else:
            raise ValueError("the 'scp' claim must be a list of strings or a string")
    return check_scopes(found)


def principal_from_claims(
    claims: dict[str, Any], *, tier_claim: str = "tier", default_tier: str = "free"
) -> Principal:
    """The user principal of a verified token; :class:`InvalidCredentials` when its identity
    claims are unusable (missing or unsafe ``sub``, malformed scopes or tier)."""
    try:
        subject = check_subject(claims.get("sub"), "the 'sub' claim")
        scopes = _scopes_of(claims)
        tier = check_tier(claims.get(tier_claim, default_tier))
    except ValueError as exc:
        raise InvalidCredentials("invalid bearer token", str(exc)) from None
    return Principal(
        kind="user", subject=subject, scopes=frozenset(scopes), tier=tier, claims=claims
    )
