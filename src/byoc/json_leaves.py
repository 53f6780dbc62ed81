"""Every key and scalar of a parsed JSON document, for the checks that look at each one (text
no store can hold, numbers no JSON reader takes back). Iterative: a document nested as deep as
the parser allows costs no recursion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def leaves(document: Any) -> Iterator[Any]:
    """The document's object keys and its values that are neither objects nor arrays."""
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        else:
            yield node
