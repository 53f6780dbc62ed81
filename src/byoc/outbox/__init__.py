"""Durable side effects: every call towards CXone or a platform is a row first.

A row is written in the same transaction as the state change that caused it, then a worker
delivers it. Rows that share a `lane` (one per conversation and direction) are delivered
strictly in insertion order: a lane's next row is not claimed while an earlier one is pending.
"""

from byoc.outbox.errors import DeliveryError, Gone, PermanentFailure, RetryLater

__all__ = ["DeliveryError", "Gone", "PermanentFailure", "RetryLater"]
