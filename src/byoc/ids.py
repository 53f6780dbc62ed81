"""Identifiers this service owns and hands to CXone as `idOnExternalPlatform`.

They are random (never guessable from one another), prefixed by kind so that a person reading
a log can tell a thread from a message, and never reused.
"""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
