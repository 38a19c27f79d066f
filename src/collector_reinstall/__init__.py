"""Reinstall failed Elasticsearch Beats collectors on ECS from Function Compute."""

from .errors import (
    CollectorReinstallError,
    ConfigurationError,
    InvalidEvent,
    InvocationFailed,
    ReinstallFailed,
)

__all__ = [
    "CollectorReinstallError",
    "ConfigurationError",
    "InvalidEvent",
    "InvocationFailed",
    "ReinstallFailed",
]
