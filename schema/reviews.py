"""Reviews: the ``Review`` type and ``Product.reviews`` / ``Product.averageRating``."""

from __future__ import annotations

from bff.graphql import ID, Info, SchemaModule, field
from clients.reviews import REVIEWS_BY_PRODUCT
from schema.products import Product
from schema.users import User

module = SchemaModule(__name__)
module.rest_loader("reviews_by_product", REVIEWS_BY_PRODUCT, upstream="reviews")


@module.type(max_age=60)
class Review:
    id: ID
    rating: int
    body: str

    @field
    def author(self, info: Info) -> User:
        return info.context.loader("users").load(self.user_id)  # type: ignore[attr-defined,no-any-return]


@module.extend(Product)
class ProductReviews:
    @field(frontends=["web"], list_size=3)
    def reviews(self, info: Info) -> list[Review]:
        return info.context.loader("reviews_by_product").load(self.id)  # type: ignore[no-any-return]

    @field(
        frontends=["web", "mobile"],
        description="mean of the product's review ratings; null when it has none",
    )
    async def average_rating(self, info: Info) -> float | None:
        reviews = await info.context.loader("reviews_by_product").load(self.id)
        if not reviews:
            return None
        return sum(r.rating for r in reviews) / len(reviews)
