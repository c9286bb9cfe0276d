"""Evaluation: sample-quality metrics, FID with local Inception weights, and the sampler-budget calibration."""

from .metrics import evaluate

__all__ = ["evaluate"]
