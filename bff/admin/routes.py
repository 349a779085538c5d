"""The admin API's endpoints: API keys, credential checks, upstream services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from bff.admin.models import (
    AuthenticateRequest,
    AuthenticateResponse,
    ErrorBody,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyPatch,
    KeyRecord,
    PrincipalOut,
    ServiceList,
    timestamp,
)
from bff.auth import ApiKeyManager, Authenticator, InvalidCredentials, KeySpec
from bff.errors import NotFound, Unauthenticated

__all__ = ["keys_router", "services_router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input."},
    401: {"model": ErrorBody, "description": "Missing or wrong admin token."},
    422: {"model": ErrorBody, "description": "The body or a parameter does not validate."},
    503: {"model": ErrorBody, "description": "The store is unavailable."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such key."}
}

KeyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The key's id.")]


def _missing(key_id: str) -> NotFound:
    return NotFound(f"no API key with id {key_id!r}")


def keys_router(manager: ApiKeyManager, authenticator: Authenticator) -> APIRouter:
    """``/keys`` and ``/authenticate``."""
    router = APIRouter(tags=["API keys"], responses=_ERRORS)

    @router.post("/keys", status_code=201, response_model=KeyCreated)
    async def create_key(body: KeyCreate) -> KeyCreated:
        """Create a key. The answer holds the key itself, shown this once only."""
        record, plaintext = await manager.create(
            KeySpec(
                name=body.name,
                owner=body.owner,
                scopes=tuple(body.scopes),
                tier=body.tier,
                expires_at=timestamp(body.expires_at),
                allowed_ips=tuple(body.allowed_ips or ()),
            )
        )
        return KeyCreated(**KeyRecord.of(record).model_dump(), key=plaintext)

    @router.get("/keys", response_model=KeyList)
    async def list_keys(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        owner: Annotated[str | None, Query(max_length=200)] = None,
        active: bool | None = None,
    ) -> KeyList:
        """Keys, oldest first (never the keys themselves nor their hashes)."""
        records = await manager.list(limit=limit, offset=offset, owner=owner, active=active)
        return KeyList(items=[KeyRecord.of(r) for r in records], limit=limit, offset=offset)

    @router.get("/keys/{key_id}", response_model=KeyRecord, responses=_NOT_FOUND)
    async def get_key(key_id: KeyId) -> KeyRecord:
        record = await manager.get(key_id)
        if record is None:
            raise _missing(key_id)
        return KeyRecord.of(record)

    @router.patch("/keys/{key_id}", response_model=KeyRecord, responses=_NOT_FOUND)
    async def patch_key(key_id: KeyId, body: KeyPatch) -> KeyRecord:
        """Change scopes, tier, active, expires_at (null: never), name, owner or allowed_ips."""
        record = await manager.update(key_id, body.changes())
        if record is None:
            raise _missing(key_id)
        return KeyRecord.of(record)

    @router.delete("/keys/{key_id}", response_model=KeyRecord, responses=_NOT_FOUND)
    async def revoke_key(key_id: KeyId) -> KeyRecord:
        """Revoke the key: it stops working on every gateway within ``cache_ttl`` (at once with
        Redis). The record stays, inactive."""
        record = await manager.revoke(key_id)
        if record is None:
            raise _missing(key_id)
        return KeyRecord.of(record)

    @router.post("/authenticate", response_model=AuthenticateResponse, tags=["credentials"])
    async def authenticate(body: AuthenticateRequest) -> AuthenticateResponse:
        """Check an API key or a JWT as the gateway would, and say whose it is or why not."""
        try:
            if body.key is not None:
                if authenticator.keys is None:
                    raise InvalidCredentials("invalid API key", "API keys are not enabled")
                principal = await authenticator.keys.verify(
                    body.key.strip().encode("utf-8", "replace"),
                    body.client_ip,
                    check_ip=body.client_ip is not None,
                    record_use=False,
                )
            else:
                assert body.token is not None
                principal = await authenticator.verify_token(
                    body.token.strip().encode("utf-8", "replace"), None
                )
        except Unauthenticated as exc:
            reason = exc.reason if isinstance(exc, InvalidCredentials) else exc.message
            return AuthenticateResponse(valid=False, reason=reason)
        return AuthenticateResponse(
            valid=True,
            principal=PrincipalOut(
                kind=principal.kind,  # type: ignore[arg-type]
                subject=principal.subject or "",
                scopes=sorted(principal.scopes),
                tier=principal.tier,
            ),
        )

    return router


def _describe(name: str, upstream: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": name,
        "targets": [
            {"url": t.base, "weight": getattr(t, "weight", 1)}
            for t in getattr(upstream, "targets", ())
        ],
    }
    describe = getattr(upstream, "describe", None)
    if callable(describe):
        extra = describe()
        if isinstance(extra, Mapping):
            info.update({k: v for k, v in extra.items() if k != "name"})
    targets = getattr(upstream, "targets", ())
    available = sum(1 for t in targets if t.available())
    info["available_targets"] = available
    info["status"] = "up" if available == len(targets) else "degraded" if available else "down"
    breaker = getattr(upstream, "breaker", None)
    info["breaker_state"] = breaker.state if breaker is not None else None
    return info


UpstreamName = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="The upstream's name.")
]


def services_router(upstreams: Mapping[str, Any]) -> APIRouter:
    """``/services`` and ``/upstreams/{name}/breaker/reset``."""
    router = APIRouter(tags=["services"], responses={401: _ERRORS[401]})

    @router.get("/services", response_model=ServiceList)
    async def services() -> ServiceList:
        """The upstream services: each one's ``status`` (``up``: every target available,
        ``degraded``, ``down``), its targets with their health (active checks, passive
        ejection, in-flight requests), and its circuit breaker's state."""
        return ServiceList(services=[_describe(n, u) for n, u in upstreams.items()])

    @router.post(
        "/upstreams/{name}/breaker/reset",
        response_model=dict[str, Any],
        responses={404: {"model": ErrorBody, "description": "No such upstream."}},
    )
    async def reset_breaker(name: UpstreamName) -> dict[str, Any]:
        """Close the upstream's circuit breaker now, in this process (each gateway process
        keeps its own breakers). Answers the upstream as ``/services`` shows it."""
        upstream = upstreams.get(name)
        if upstream is None:
            raise NotFound(f"no upstream named {name!r}")
        breaker = getattr(upstream, "breaker", None)
        if breaker is None:
            raise NotFound(f"upstream {name!r} has no circuit breaker (breaker.enabled: false)")
        breaker.reset()
        return _describe(name, upstream)

    return router
