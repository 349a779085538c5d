"""The admin API (FastAPI, under ``admin.path``, bearer ``admin.token``; OpenAPI published)."""

from bff.admin.app import AdminApp, build_admin_app

__all__ = ["AdminApp", "build_admin_app"]
