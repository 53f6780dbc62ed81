"""The Alembic environment: `env.py`, the revisions under `versions/`, the revision template."""
