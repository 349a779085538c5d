"""Request and response bodies of the admin API (they make its OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bff.auth.claims import check_scopes, check_tier
from bff.auth.key_manager import check_cidrs, check_key_name, check_owner
from bff.store import ApiKeyRecord

__all__ = [
    "AuthenticateRequest",
    "AuthenticateResponse",
    "ErrorBody",
    "KeyCreate",
    "KeyCreated",
    "KeyList",
    "KeyPatch",
    "KeyRecord",
    "PrincipalOut",
    "ServiceList",
    "timestamp",
]


def _utc(value: datetime) -> datetime:
    # A time without an offset is taken as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp(value: datetime | None) -> float | None:
    """Seconds since the epoch of ``value`` (UTC when it has no offset)."""
    return None if value is None else _utc(value).timestamp()


def _iso(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreate(_Body):
    """A new API key."""

    name: str = Field(description="What the key is for (1-200 printable characters).")
    owner: str | None = Field(default=None, description="Who holds it (team, customer...).")
    scopes: list[str] = Field(default_factory=list, description="Scopes granted to the key.")
    tier: str = Field(default="free", description="Rate-limit tier (a plan of rate_limits).")
    expires_at: datetime | None = Field(
        default=None, description="ISO 8601 time (UTC when no offset) after which it fails."
    )
    allowed_ips: list[str] | None = Field(
        default=None, description="CIDRs the key may be used from; empty or absent: anywhere."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_key_name(value)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return check_owner(value)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        return list(check_scopes(value))

    @field_validator("tier")
    @classmethod
    def _tier(cls, value: str) -> str:
        return check_tier(value)

    @field_validator("allowed_ips")
    @classmethod
    def _ips(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(check_cidrs(value))


class KeyPatch(_Body):
    """Changes to a key: only the fields given change (``expires_at: null`` removes expiry)."""

    name: str | None = None
    owner: str | None = None
    scopes: list[str] | None = None
    tier: str | None = None
    active: bool | None = None
    expires_at: datetime | None = None
    allowed_ips: list[str] | None = None

    @model_validator(mode="after")
    def _not_null(self) -> KeyPatch:
        for name in ("name", "scopes", "tier", "active", "allowed_ips"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the request set, in the store's terms."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            out[name] = timestamp(value) if name == "expires_at" else value
        return out


class KeyRecord(BaseModel):
    """An API key as listed: never the key itself nor its hash."""

    id: str
    prefix: str = Field(description="The key's public start, to tell keys apart.")
    name: str
    owner: str | None
    scopes: list[str]
    tier: str
    allowed_ips: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_used: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> KeyRecord:
        data = record.public()
        for name in ("created_at", "updated_at", "expires_at", "last_used"):
            data[name] = _iso(data[name])
        return cls(**data)


class KeyCreated(KeyRecord):
    """A new key's record and, this once only, the key."""

    key: str = Field(description="The API key. Shown once: it is stored only as a hash.")


class KeyList(BaseModel):
    items: list[KeyRecord]
    limit: int
    offset: int


class AuthenticateRequest(_Body):
    """A credential to check: exactly one of ``key`` and ``token``."""

    key: str | None = Field(default=None, max_length=1024, description="An API key.")
    token: str | None = Field(default=None, max_length=65536, description="A bearer JWT.")
    client_ip: str | None = Field(
        default=None, max_length=64, description="Check a key's IP allowlist for this address."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AuthenticateRequest:
        if (self.key is None) == (self.token is None):
            raise ValueError("give exactly one of 'key' and 'token'")
        return self


class PrincipalOut(BaseModel):
    kind: Literal["user", "api_key"]
    subject: str
    scopes: list[str]
    tier: str


class AuthenticateResponse(BaseModel):
    valid: bool
    principal: PrincipalOut | None = None
    reason: str | None = None


class ServiceList(BaseModel):
    services: list[dict[str, Any]]


class _ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None


class ErrorBody(BaseModel):
    """Every error answer of the admin API."""

    error: _ErrorDetail
