"""A schema module with an N+1 on purpose: ``User.nextUser`` calls the client per user."""

from __future__ import annotations

from bff.graphql import Info, SchemaModule, field
from clients.users import UsersClient
from schema.users import User

module = SchemaModule(__name__)


@module.extend(User)
class NaiveUserFields:
    @field
    async def next_user(self, info: Info) -> User | None:
        return await info.context.client(UsersClient).get_user(self.id + 1)  # type: ignore[attr-defined,return-value]
