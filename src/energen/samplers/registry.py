"""The registry of field samplers by name."""

from __future__ import annotations

from ..registry import Registry

SAMPLERS: Registry = Registry("sampler")
