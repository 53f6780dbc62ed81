"""Persistence: one SQL subset that runs on SQLite (the embedded default) and PostgreSQL."""

from byoc.store.db import Database, DuplicateError, StoreError, now_ms

__all__ = ["Database", "DuplicateError", "StoreError", "now_ms"]
