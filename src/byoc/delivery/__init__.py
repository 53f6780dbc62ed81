"""Outbox deliveries, split by destination: `to_cxone`, `to_platform`; `registry` maps each
kind of `byoc.outbox.kinds` to its handler."""

from byoc.delivery.registry import Deliveries, RegistryError

__all__ = ["Deliveries", "RegistryError"]
