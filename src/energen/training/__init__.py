"""Training: the loop, its checkpoints (export and resume), the EMA and the rank helpers."""

from .loop import TrainResult, train

__all__ = ["TrainResult", "train"]
