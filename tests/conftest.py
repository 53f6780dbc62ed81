"""Shared fixtures. Emulator fixtures live in tests/emulator_harness.py."""
