"""Users: the ``User`` type, the ``users`` loader and the user queries."""

from __future__ import annotations

from enum import Enum
from typing import Any

from bff.graphql import ID, Info, SchemaModule, field
from clients.users import USERS_BY_ID, UsersClient
from schema.common import DateTime, check_page, common, parse_id

module = SchemaModule(__name__, requires=[common])
module.rest_loader("users", USERS_BY_ID, upstream="users")


@module.enum
class Tier(Enum):
    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


@module.type(max_age=30)
class User:
    id: ID
    name: str
    email: str = field(frontends=["web"])
    tier: Tier
    created_at: DateTime = field(frontends=["web"])


@module.type(max_age=30)
class UserPage:
    items: list[User]
    total: int


@module.query(
    frontends=["web", "mobile"],
    requires_auth=True,
    private=True,  # cacheable by the caller's own client only
    description="the signed-in user (JWT subject = user id); UNAUTHENTICATED error without a "
    "valid token",
)
def me(info: Info) -> User | None:
    principal = info.context.principal
    if principal.kind != "user" or not principal.subject or not principal.subject.isdigit():
        return None
    return info.context.loader("users").load(int(principal.subject))  # type: ignore[no-any-return]


@module.query(frontends=["web", "mobile"])
def user(info: Info, id: ID) -> User | None:
    return info.context.loader("users").load(parse_id(id))  # type: ignore[no-any-return]


async def _page(info: Info, limit: int, offset: int, max_limit: int) -> Any:
    check_page(limit, offset, max_limit)
    return await info.context.client(UsersClient).list_users(limit, offset)


@module.query(name="users", frontends=["web"], description="limit 1..100")
async def users_web(info: Info, limit: int = 20, offset: int = 0) -> UserPage:
    return await _page(info, limit, offset, 100)  # type: ignore[no-any-return]


@module.query(name="users", frontends=["mobile"], description="limit 1..50")
async def users_mobile(info: Info, limit: int = 10, offset: int = 0) -> UserPage:
    return await _page(info, limit, offset, 50)  # type: ignore[no-any-return]
