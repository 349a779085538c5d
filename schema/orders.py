"""Orders: ``Order``, ``OrderLine``, ``User.orders``, the ``order`` query and ``placeOrder``."""

from __future__ import annotations

from enum import Enum

from bff.errors import BadRequest, Unauthenticated
from bff.graphql import ID, Info, SchemaModule, field
from clients.orders import ORDERS_BY_ID, ORDERS_BY_USER, OrdersClient
from schema.common import DateTime, Money, common, parse_id
from schema.products import Product
from schema.users import User

module = SchemaModule(__name__, requires=[common])
module.rest_loader("orders", ORDERS_BY_ID, upstream="orders")
module.rest_loader("orders_by_user", ORDERS_BY_USER, upstream="orders")

_SHOPPING = ["web", "mobile"]


@module.enum
class OrderStatus(Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


@module.type
class OrderLine:
    quantity: int

    @field
    def unit_price(self) -> Money:
        return Money(amount_cents=self.unit_price_cents, currency=self.currency)  # type: ignore[attr-defined]

    @field
    def product(self, info: Info) -> Product:
        return info.context.loader("products").load(self.product_id)  # type: ignore[attr-defined,no-any-return]


# No cache hint: an order changes as it ships, so no answer holding one is ever cached.
@module.type
class Order:
    id: ID
    status: OrderStatus
    created_at: DateTime = field(frontends=_SHOPPING)
    lines: list[OrderLine] = field(frontends=_SHOPPING, list_size=3)

    @field(frontends=_SHOPPING)
    def total(self) -> Money:
        return Money(amount_cents=self.total_cents, currency=self.currency)  # type: ignore[attr-defined]

    @field(frontends=["web"])
    def user(self, info: Info) -> User:
        return info.context.loader("users").load(self.user_id)  # type: ignore[attr-defined,no-any-return]


@module.extend(User)
class UserOrders:
    @field(frontends=_SHOPPING, list_size=5)
    def orders(self, info: Info) -> list[Order]:
        return info.context.loader("orders_by_user").load(self.id)  # type: ignore[no-any-return]


@module.input
class OrderLineInput:
    product_id: ID
    quantity: int


@module.query
def order(info: Info, id: ID) -> Order | None:
    return info.context.loader("orders").load(parse_id(id))  # type: ignore[no-any-return]


@module.mutation(
    frontends=_SHOPPING,
    scopes=["orders:write"],
    description="places an order for the signed-in user; needs scope orders:write",
)
async def place_order(info: Info, lines: list[OrderLineInput]) -> Order:
    principal = info.context.principal
    if principal.kind != "user" or not (principal.subject or "").isdigit():
        raise Unauthenticated("placing an order needs a signed-in user")
    if not lines:
        raise BadRequest("an order needs at least one line")
    if len(lines) > 100:
        raise BadRequest("an order has at most 100 lines")
    pairs = []
    for line in lines:
        if line.quantity < 1:
            raise BadRequest("quantity must be at least 1")
        pairs.append((parse_id(line.product_id, "productId"), line.quantity))
    client = info.context.client(OrdersClient)
    return await client.create_order(int(principal.subject or 0), pairs)  # type: ignore[return-value]
