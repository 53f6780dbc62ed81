"""What delivery code raises beneath a handler (a channel adapter, a CXone call, a lookup).

`byoc.delivery.registry` turns it into the handler's `Outcome`, in one place: the worker sees
outcomes only.

DeliveryError
├── RetryLater        the other side is unavailable: try again after a backoff
├── PermanentFailure  the other side refused the delivery: dead-letter it now
└── Gone              what the row is about no longer exists here (purged by retention,
                      erased, never written): nothing to deliver, the row is settled
"""

from __future__ import annotations


class DeliveryError(Exception):
    pass


class RetryLater(DeliveryError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(DeliveryError):
    pass


class Gone(DeliveryError):
    """The row names a message or conversation the store no longer holds. Its text names ids
    only, never content."""
