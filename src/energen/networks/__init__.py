"""Networks: MLPs and IGEBM's ResNet for small data, U-Nets and the EqM-* transformers for images, and the
wrappers that make a scalar energy (EqM-E, contrastive divergence) or a recovery model (DRL/CDRL) of them.

Importing this package registers every backbone in :data:`MODELS`.
"""

from . import mlp, resnet, transformer, unet  # noqa: F401  (register the backbones)
from .base import MODELS, NetSpec, default_model
from .energy import ExplicitEnergy, ScalarEnergy, spectral_normalise

__all__ = ["MODELS", "ExplicitEnergy", "NetSpec", "ScalarEnergy", "default_model", "spectral_normalise"]
