"""The registry of training methods by name, and a run's saved configuration read through its method."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..registry import Registry
from ..training.checkpoint import read_json
from .base import Method

METHODS: Registry[Method] = Registry("method")


def saved_config(run_dir: Path) -> TrainConfig:
    """The configuration a run directory was trained with. Runs written before an option existed get the value
    they were trained with: ``gamma_power`` uniform, Adam's ``beta1`` 0.9, and what their method migrates."""
    path = Path(run_dir) / "config.json"
    d = read_json(path)
    if isinstance(d, dict):
        d.setdefault("gamma_power", 1.0)
        d.setdefault("adam_beta1", 0.9)
        if d.get("method") in METHODS:
            d = METHODS.get(d["method"]).migrate(d)
    return TrainConfig.from_dict(d, where=str(path))
