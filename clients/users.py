"""Typed client of the users service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bff.upstream import RestBatch
from clients._base import ServiceClient, parse_datetime

__all__ = ["USERS_BY_ID", "User", "UserPage", "UsersClient"]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str
    tier: str
    created_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> User:
        return cls(d["id"], d["name"], d["email"], d["tier"], parse_datetime(d["created_at"]))


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[User]
    total: int


USERS_BY_ID: RestBatch[int, User] = RestBatch(
    path="/users", key_param="ids", key_field="id", max_batch_size=100, parse=User.from_json
)


class UsersClient(ServiceClient):
    """``GET /users?ids=``, ``GET /users?limit=&offset=``, ``GET /users/{id}``."""

    default_upstream = "users"

    async def get_users(self, ids: Sequence[int]) -> list[User | None]:
        """The users with these ids, in the same order (``None`` for unknown ids)."""
        return await USERS_BY_ID.fetch(self.upstream, ids)

    async def get_user(self, user_id: int) -> User | None:
        data = await self._get_one(f"/users/{int(user_id)}", "/users/{id}")
        return User.from_json(data) if isinstance(data, dict) else None

    async def list_users(self, limit: int = 20, offset: int = 0) -> UserPage:
        data = await self.upstream.get_json(
            "/users", {"limit": limit, "offset": offset}, template="/users"
        )
        return UserPage([User.from_json(u) for u in data["items"]], int(data["total"]))
