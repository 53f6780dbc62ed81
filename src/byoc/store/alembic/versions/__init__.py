"""Alembic revisions, oldest first by `down_revision`; each one is applied once per database."""
