"""What an outbox handler raises; the worker decides the row's fate from it alone.

DeliveryError
├── RetryLater        the other side is unavailable: try again after a backoff
└── PermanentFailure  the other side refused the delivery: dead-letter it now
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
