"""Typed client of the reviews service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bff.upstream import RestBatch
from clients._base import ServiceClient

__all__ = ["REVIEWS_BY_PRODUCT", "Review", "ReviewsClient"]


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    product_id: int
    user_id: int
    rating: int
    body: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Review:
        return cls(d["id"], d["product_id"], d["user_id"], d["rating"], d["body"])


REVIEWS_BY_PRODUCT: RestBatch[int, list[Review]] = RestBatch(
    path="/reviews",
    key_param="product_ids",
    key_field="product_id",
    many=True,
    max_batch_size=100,
    parse=Review.from_json,
)


class ReviewsClient(ServiceClient):
    """``GET /reviews?product_ids=``."""

    default_upstream = "reviews"

    async def get_reviews_by_product(self, product_ids: Sequence[int]) -> list[list[Review]]:
        """The reviews of each product, in the order of ``product_ids`` (``[]`` when none)."""
        return await REVIEWS_BY_PRODUCT.fetch(self.upstream, product_ids)
