"""Products: the ``Product`` type, the ``products`` loader and the product queries."""

from __future__ import annotations

from enum import Enum
from typing import Any

from bff.errors import BadRequest
from bff.graphql import ID, Info, SchemaModule, field
from clients.products import PRODUCTS_BY_ID, ProductsClient
from schema.common import Money, check_page, common, parse_id

module = SchemaModule(__name__, requires=[common])
# A product page is still worth showing when the products service has a bad minute: the last
# good answer for each product is kept 5 minutes (extensions.degraded says which ones).
module.rest_loader("products", PRODUCTS_BY_ID, upstream="products", stale_if_error=300)

_IMAGE_WIDTHS = {"small": 128, "medium": 512}


@module.enum
class ImageSize(Enum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


@module.type(max_age=60)
class Product:
    id: ID
    name: str = field(frontends=["web", "mobile"])
    description: str = field(frontends=["web"])
    image_url: str = field(frontends=["web"])
    stock: int

    @field(frontends=["web", "mobile"])
    def price(self) -> Money:
        return Money(amount_cents=self.price_cents, currency=self.currency)  # type: ignore[attr-defined]

    @field(
        name="imageUrl",
        frontends=["mobile"],
        description="SMALL -> ...?w=128, MEDIUM -> ...?w=512, LARGE -> the original URL",
    )
    def image_url_sized(self, size: ImageSize = ImageSize.SMALL) -> str:
        width = _IMAGE_WIDTHS.get(size.value)
        return f"{self.image_url}?w={width}" if width else self.image_url


@module.type(max_age=60)
class ProductPage:
    items: list[Product]
    total: int


@module.query
def product(info: Info, id: ID) -> Product | None:
    return info.context.loader("products").load(parse_id(id))  # type: ignore[no-any-return]


async def _page(info: Info, limit: int, offset: int, max_limit: int) -> Any:
    check_page(limit, offset, max_limit)
    return await info.context.client(ProductsClient).list_products(limit, offset)


@module.query(name="products", frontends=["web"], description="limit 1..100")
async def products_web(info: Info, limit: int = 20, offset: int = 0) -> ProductPage:
    return await _page(info, limit, offset, 100)  # type: ignore[no-any-return]


@module.query(name="products", frontends=["mobile"], description="limit 1..50")
async def products_mobile(info: Info, limit: int = 10, offset: int = 0) -> ProductPage:
    return await _page(info, limit, offset, 50)  # type: ignore[no-any-return]


@module.query(name="products", frontends=["iot"], description="at most 100 ids")
async def products_by_ids(info: Info, ids: list[ID]) -> list[Product]:
    if len(ids) > 100:
        raise BadRequest("at most 100 ids")
    keys = [parse_id(i) for i in ids]
    found = await info.context.loader("products").load_many(keys)
    # Like the service, unknown ids are left out rather than failing the whole list.
    return [p for p in found if p is not None]
