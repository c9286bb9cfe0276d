"""Training losses, one module per family; each returns per-sample values in a :class:`LossOutput`."""

from .base import LossOutput
from .contrastive_divergence import ContrastiveDivergence
from .eqm import FieldMatching
from .recovery_likelihood import RecoveryLikelihood
from .replay_buffer import ReplayBuffer

__all__ = ["ContrastiveDivergence", "FieldMatching", "LossOutput", "RecoveryLikelihood", "ReplayBuffer"]
