"""Training methods, one module per family, registered by name in :data:`METHODS`."""

from .registry import METHODS, Method

__all__ = ["METHODS", "Method"]
