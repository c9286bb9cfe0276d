"""Training methods, one module per family, registered by name in :data:`METHODS`.

A method owns everything method-specific (:class:`~energen.methods.base.Method`); registering one is one line here.
"""

from .base import Method
from .contrastive import ContrastiveDivergenceMethod
from .eqm import EquilibriumMatching
from .flow_matching import FlowMatching
from .recovery import RecoveryLikelihoodMethod
from .registry import METHODS, saved_config

METHODS.add("eqm", EquilibriumMatching("eqm", "Equilibrium Matching: a time-free equilibrium gradient field"))
METHODS.add("eqm-e", EquilibriumMatching("eqm-e", "Equilibrium Matching with an explicit scalar energy",
                                         explicit_energy=True))  # fmt: skip
METHODS.add("fm", FlowMatching("fm", "flow matching baseline: a time-conditioned velocity field"))
METHODS.add("drl", RecoveryLikelihoodMethod("drl", "diffusion recovery likelihood: an EBM per noise level, Langevin "
                                            "from x_{t+1}"))  # fmt: skip
METHODS.add("cdrl", RecoveryLikelihoodMethod("cdrl", "cooperative DRL: DRL plus an initializer network that proposes "
                                             "each chain", cooperative=True))  # fmt: skip
METHODS.add("cd", ContrastiveDivergenceMethod("cd", "contrastive divergence (IGEBM, Improved CD): Langevin from a "
                                              "replay buffer"))  # fmt: skip

__all__ = ["METHODS", "Method", "saved_config"]
