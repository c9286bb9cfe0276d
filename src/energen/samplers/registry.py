"""The registry of samplers by name: each name maps to its typed settings class, which builds the sampler."""

from __future__ import annotations

from ..registry import Registry

SAMPLERS: Registry = Registry("sampler")
