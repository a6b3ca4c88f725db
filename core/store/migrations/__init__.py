"""Alembic migrations of the store's schema; see ``core.store.migrate``."""
