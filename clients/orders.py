"""Typed client of the orders service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from bff.errors import BadRequest, UpstreamError
from bff.upstream import RestBatch
from clients._base import ServiceClient, parse_datetime

__all__ = ["ORDERS_BY_ID", "ORDERS_BY_USER", "Order", "OrderLine", "OrdersClient"]


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int
    quantity: int
    unit_price_cents: int
    #: The order's currency (lines carry none of their own in the service's answer).
    currency: str


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    user_id: int
    status: str
    created_at: datetime
    currency: str
    total_cents: int
    lines: tuple[OrderLine, ...]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Order:
        return cls(
            d["id"],
            d["user_id"],
            d["status"],
            parse_datetime(d["created_at"]),
            d["currency"],
            d["total_cents"],
            tuple(
                OrderLine(li["product_id"], li["quantity"], li["unit_price_cents"], d["currency"])
                for li in d["lines"]
            ),
        )


ORDERS_BY_USER: RestBatch[int, list[Order]] = RestBatch(
    path="/orders",
    key_param="user_ids",
    key_field="user_id",
    many=True,
    max_batch_size=100,
    parse=Order.from_json,
)
ORDERS_BY_ID: RestBatch[int, Order] = RestBatch(
    path="/orders", key_param="ids", key_field="id", max_batch_size=100, parse=Order.from_json
)


class OrdersClient(ServiceClient):
    """``GET /orders?user_ids=``, ``GET /orders?ids=``, ``GET /orders/{id}``, ``POST /orders``."""

    default_upstream = "orders"

    async def get_orders_by_user(self, user_ids: Sequence[int]) -> list[list[Order]]:
        """Every order of each user, in the order of ``user_ids`` (``[]`` when none)."""
        return await ORDERS_BY_USER.fetch(self.upstream, user_ids)

    async def get_orders(self, ids: Sequence[int]) -> list[Order | None]:
        return await ORDERS_BY_ID.fetch(self.upstream, ids)

    async def get_order(self, order_id: int) -> Order | None:
        data = await self._get_one(f"/orders/{int(order_id)}", "/orders/{id}")
        return Order.from_json(data) if isinstance(data, dict) else None

    async def create_order(self, user_id: int, lines: Sequence[tuple[int, int]]) -> Order:
        """Place an order of ``(product_id, quantity)`` lines for ``user_id``.

        The service's 400 and 422 answers (unknown user or product) become
        :class:`~bff.errors.BadRequest` with its message; anything else non-2xx is an
        :class:`~bff.errors.UpstreamError`.
        """
        payload = {
            "user_id": user_id,
            "lines": [{"product_id": p, "quantity": q} for p, q in lines],
        }
        response = await self.upstream.request("POST", "/orders", json=payload, template="/orders")
        if response.status_code in (400, 422):
            try:
                detail = orjson.loads(response.content)
                message = str(detail.get("message") or detail.get("error") or "invalid order")
            except (orjson.JSONDecodeError, AttributeError):
                message = "invalid order"
            raise BadRequest(message)
        if response.status_code not in (200, 201):
            raise UpstreamError(upstream=self.upstream.name, status=response.status_code)
        return Order.from_json(self.upstream.decode(response))
