"""A schema module for the fallback tests: a loader with a short shared cache."""

from __future__ import annotations

from bff.graphql import ID, Info, SchemaModule
from clients.products import PRODUCTS_BY_ID
from schema.common import parse_id
from schema.products import Product

module = SchemaModule(__name__)
# Product entities serve every request for 30 s: repeated fetches across requests stop here.
module.rest_loader("shared_products", PRODUCTS_BY_ID, upstream="products", shared_ttl=30)


@module.query(frontends=["web"], max_age=60)
def shared_product(info: Info, id: ID) -> Product | None:
    return info.context.loader("shared_products").load(parse_id(id))  # type: ignore[no-any-return]
