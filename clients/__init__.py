"""Typed async clients of the sample REST services, over the gateway's upstream layer."""

from clients.orders import Order, OrderLine, OrdersClient
from clients.products import Product, ProductPage, ProductsClient
from clients.reviews import Review, ReviewsClient
from clients.users import User, UserPage, UsersClient

__all__ = [
    "Order",
    "OrderLine",
    "OrdersClient",
    "Product",
    "ProductPage",
    "ProductsClient",
    "Review",
    "ReviewsClient",
    "User",
    "UserPage",
    "UsersClient",
]
