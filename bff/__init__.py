"""bff: a Backend-for-Frontend GraphQL aggregation gateway."""

__version__ = "0.1.0"
