"""Types every shop module shares: the ``DateTime`` scalar and ``Money``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType

from bff.errors import BadRequest
from bff.graphql import SchemaModule, field

__all__ = ["DateTime", "Money", "common", "parse_id"]

common = SchemaModule(__name__)


def _serialize_datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat() + "Z"


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be a string")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


DateTime = common.scalar(
    NewType("DateTime", datetime),
    name="DateTime",
    description="ISO-8601 date-time in UTC, e.g. 2025-06-01T00:00:00Z",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)


@common.type(inherit_max_age=True)  # a value: as fresh as the product or order holding it
class Money:
    amount_cents: int
    currency: str

    @field(description='e.g. "$12.34" for USD')
    def formatted(self) -> str:
        sign = "-" if self.amount_cents < 0 else ""
        cents = abs(self.amount_cents)
        amount = f"{cents // 100:,}.{cents % 100:02d}"
        if self.currency == "USD":
            return f"{sign}${amount}"
        return f"{sign}{amount} {self.currency}"


def parse_id(value: object, what: str = "id") -> int:
    """A GraphQL ``ID`` argument as the services' positive integer ids."""
    try:
        number = int(str(value))
    except ValueError:
        raise BadRequest(f"{what} must be a positive integer") from None
    if number < 1:
        raise BadRequest(f"{what} must be a positive integer")
    return number


def check_page(limit: int, offset: int, max_limit: int) -> None:
    """Reject page arguments outside the app's bounds with BAD_USER_INPUT."""
    if not 1 <= limit <= max_limit:
        raise BadRequest(f"limit must be between 1 and {max_limit}")
    if offset < 0:
        raise BadRequest("offset must not be negative")
