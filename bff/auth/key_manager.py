"""The API-key lifecycle: create (plaintext shown once), list, change, revoke.

Used by the admin API and by ``bff keys``. Every change is announced through
:class:`~bff.auth.key_events.KeyEvents`, so gateway caches drop the key at once (this process,
and every process when Redis is configured).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bff.auth.api_keys import generate_api_key
from bff.auth.claims import check_scopes, check_tier
from bff.auth.key_events import KeyEvents
from bff.errors import BadRequest
from bff.store import ApiKeyRecord, DuplicatePrefix, Store

__all__ = [
    "ApiKeyManager",
    "KeySpec",
    "check_cidrs",
    "check_expiry",
    "check_key_name",
    "check_owner",
]

MAX_NAME_CHARS = 200
MAX_SCOPES = 100
MAX_CIDRS = 100


def check_key_name(value: object) -> str:
    """1-200 printable characters (anything else is refused, SQL metacharacters included
    harmlessly: values are always bound parameters)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("name must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"name is longer than {MAX_NAME_CHARS} characters")
    if not value.isprintable():
        raise ValueError("name contains control or non-printable characters")
    return value


def check_owner(value: object) -> str | None:
    """None, or like a name."""
    if value is None:
        return None
    try:
        return check_key_name(value)
    except ValueError as exc:
        raise ValueError(str(exc).replace("name", "owner", 1)) from None


def check_cidrs(values: Iterable[object]) -> tuple[str, ...]:
    """CIDRs (or single addresses), normalized; ``ValueError`` naming the first bad one."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"invalid CIDR {value!r}")
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=True)))
        except ValueError:
            try:
                net = ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                raise ValueError(f"invalid CIDR {value[:60]!r}") from None
            raise ValueError(
                f"invalid CIDR {value!r}: host bits set (did you mean {net}?)"
            ) from None
    if len(out) > MAX_CIDRS:
        raise ValueError(f"at most {MAX_CIDRS} CIDRs")
    return tuple(dict.fromkeys(out))


def check_expiry(value: float | None, now: float) -> float | None:
    """None, or a time in the future."""
    if value is None:
        return None
    if value <= now:
        raise ValueError("expires_at must be in the future")
    return float(value)


@dataclass(frozen=True)
class KeySpec:
    """What a new key is: everything but its secret."""

    name: str
    owner: str | None = None
    scopes: tuple[str, ...] = ()
    tier: str = "free"
    expires_at: float | None = None
    allowed_ips: tuple[str, ...] = field(default_factory=tuple)


class ApiKeyManager:
    """Creates and changes keys in ``store``; ``tiers`` (when given) are the accepted tiers."""

    def __init__(
        self,
        store: Store,
        events: KeyEvents,
        *,
        tiers: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.events = events
        self.tiers = sorted(tiers) if tiers else None
        self._clock = clock

    def _check_tier(self, tier: object) -> str:
        value = check_tier(tier)
        if self.tiers is not None and value not in self.tiers:
            raise ValueError(f"unknown tier {value!r} (known: {', '.join(self.tiers)})")
        return value

    def _validated(self, spec: KeySpec) -> KeySpec:
        try:
            scopes = check_scopes(spec.scopes)
            if len(scopes) > MAX_SCOPES:
                raise ValueError(f"at most {MAX_SCOPES} scopes")
            return KeySpec(
                name=check_key_name(spec.name),
                owner=check_owner(spec.owner),
                scopes=scopes,
                tier=self._check_tier(spec.tier),
                expires_at=check_expiry(spec.expires_at, self._clock()),
                allowed_ips=check_cidrs(spec.allowed_ips),
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    async def create(self, spec: KeySpec) -> tuple[ApiKeyRecord, str]:
        """Store a new key; returns its record and its plaintext (shown once, never stored)."""
        spec = self._validated(spec)
        for _ in range(5):
            new = generate_api_key()
            now = self._clock()
            record = ApiKeyRecord(
                id="key_" + secrets.token_hex(8),
                prefix=new.prefix,
                key_hash=new.key_hash,
                name=spec.name,
                owner=spec.owner,
                scopes=spec.scopes,
                tier=spec.tier,
                allowed_ips=spec.allowed_ips,
                active=True,
                created_at=now,
                updated_at=now,
                expires_at=spec.expires_at,
            )
            try:
                await self.store.api_keys.insert(record)
            except DuplicatePrefix:
                continue  # 48 random bits collided: draw another key
            await self.events.publish(record.prefix)
            return record, new.plaintext
        raise BadRequest("could not allocate a unique key; try again")

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        return await self.store.api_keys.get(key_id)

    async def list(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        owner: str | None = None,
        active: bool | None = None,
    ) -> list[ApiKeyRecord]:
        return await self.store.api_keys.list(
            limit=limit, offset=offset, owner=owner, active=active
        )

    async def update(self, key_id: str, changes: Mapping[str, Any]) -> ApiKeyRecord | None:
        """Change ``name``, ``owner``, ``scopes``, ``tier``, ``expires_at``, ``active`` or
        ``allowed_ips``; the updated record, or None when there is no such key."""
        checkers: dict[str, Callable[[Any], Any]] = {
            "name": check_key_name,
            "owner": check_owner,
            "scopes": check_scopes,
            "tier": self._check_tier,
            "expires_at": lambda v: check_expiry(v, self._clock()),
            "allowed_ips": check_cidrs,
            "active": _check_bool,
        }
        values: dict[str, Any] = {}
        try:
            for name, value in changes.items():
                checker = checkers.get(name)
                if checker is None:
                    raise ValueError(f"{name!r} cannot be changed")
                values[name] = checker(value)
            if len(values.get("scopes", ())) > MAX_SCOPES:
                raise ValueError(f"at most {MAX_SCOPES} scopes")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        values["updated_at"] = self._clock()
        record = await self.store.api_keys.update(key_id, values)
        if record is not None:
            await self.events.publish(record.prefix)
        return record

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Deactivate the key (the record stays, for audit; PATCH ``active`` can undo it)."""
        return await self.update(key_id, {"active": False})


def _check_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("active must be true or false")
    return value
