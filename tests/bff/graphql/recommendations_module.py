"""Recommendations: ``User.recommended`` on web and mobile."""

from __future__ import annotations

from bff.graphql import Info, SchemaModule, field
from schema.products import Product
from schema.users import User

module = SchemaModule(__name__)


@module.loader("recommended_ids", max_batch_size=100)
async def recommended_ids(ctx, user_ids: list[int]) -> list[list[int]]:
    # One call for the whole level. A real team would call its own service here.
    return [[(uid * 7 + k) % 500 + 1 for k in range(3)] for uid in user_ids]


@module.extend(User)
class UserRecommendations:
    @field(frontends=["web", "mobile"], list_size=3, description="products this user may like")
    async def recommended(self, info: Info) -> list[Product]:
        ids = await info.context.loader("recommended_ids").load(self.id)
        products = await info.context.loader("products").load_many(ids)
        return [p for p in products if p is not None]
