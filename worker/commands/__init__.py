"""Operator commands of the `pushsync` CLI that act on the worker's state."""
