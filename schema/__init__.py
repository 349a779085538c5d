"""The sample shop domain, as backend teams write their schema modules.

Each module owns its types, fields and loaders and is listed in ``graphql.schema_modules``.
"""
