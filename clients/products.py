"""Typed client of the products service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bff.upstream import RestBatch
from clients._base import ServiceClient

__all__ = ["PRODUCTS_BY_ID", "Product", "ProductPage", "ProductsClient"]


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    description: str
    price_cents: int
    currency: str
    image_url: str
    stock: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Product:
        return cls(
            d["id"],
            d["name"],
            d["description"],
            d["price_cents"],
            d["currency"],
            d["image_url"],
            d["stock"],
        )


@dataclass(frozen=True, slots=True)
class ProductPage:
    items: list[Product]
    total: int


PRODUCTS_BY_ID: RestBatch[int, Product] = RestBatch(
    path="/products", key_param="ids", key_field="id", max_batch_size=100, parse=Product.from_json
)


class ProductsClient(ServiceClient):
    """``GET /products?ids=``, ``GET /products?limit=&offset=``, ``GET /products/{id}``."""

    default_upstream = "products"

    async def get_products(self, ids: Sequence[int]) -> list[Product | None]:
        """The products with these ids, in the same order (``None`` for unknown ids)."""
        return await PRODUCTS_BY_ID.fetch(self.upstream, ids)

    async def get_product(self, product_id: int) -> Product | None:
        data = await self._get_one(f"/products/{int(product_id)}", "/products/{id}")
        return Product.from_json(data) if isinstance(data, dict) else None

    async def list_products(self, limit: int = 20, offset: int = 0) -> ProductPage:
        data = await self.upstream.get_json(
            "/products", {"limit": limit, "offset": offset}, template="/products"
        )
        return ProductPage([Product.from_json(p) for p in data["items"]], int(data["total"]))
