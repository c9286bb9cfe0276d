"""The registry of training methods by name, and a run's saved configuration read through its method."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..errors import ConfigError
from ..registry import Registry
from ..training.checkpoint import read_json
from .base import Method

METHODS: Registry[Method] = Registry("method")


def saved_config(run_dir: Path) -> TrainConfig:
    """The configuration a run directory was trained with. Runs written before an option existed get the value
    they were trained with: ``gamma_power`` uniform, Adam's ``beta1`` 0.9, and what their method migrates.

    A hand-edited or corrupt ``config.json`` (an unknown key or method, a value of the wrong type or out of
    range) is a :class:`ConfigError` naming the file and the option, on one line."""
    path = Path(run_dir) / "config.json"
    d = read_json(path)
    d.setdefault("gamma_power", 1.0)
    d.setdefault("adam_beta1", 0.9)
    method = d.get("method", TrainConfig.method)
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"{path}: method must be one of {', '.join(METHODS.names())}, got {method!r}")
    try:
        d = METHODS.get(method).migrate(d)
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # a migration met a value of the wrong type
        raise ConfigError(f"{path}: cannot read the {method} options: {e}") from None
    cfg = TrainConfig.from_dict(d, where=str(path))
    try:
        return cfg.validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
