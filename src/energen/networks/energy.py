"""Scalar energies: EqM-E's explicit energy and the energy of contrastive divergence."""

from __future__ import annotations

from torch import Tensor, nn

from ..fields import EnergyField


def _twice_differentiable(net: nn.Module) -> None:
    """Ask a network with fused kernels that lack double backward (attention) to use plain ops."""
    if hasattr(net, "set_double_backward"):
        net.set_double_backward(True)


class ExplicitEnergy(nn.Module):
    r"""EqM-E: a scalar energy built from a network ``h`` of x's shape, and its field :math:`-\nabla E`.

    - ``dot``: :math:`E(x) = -\sum h(x) \odot x`;
    - ``l2``:  :math:`E(x) = \tfrac12 \sum h(x)^2`.

    ``forward`` returns the field, so training and sampling treat EqM and EqM-E alike. In training mode
    the gradient keeps its graph (double backward), so a loss on the field trains the energy.
    """

    has_energy = True  # fields.energy_source: ``energy(x, t, y)`` is the energy whose -gradient ``forward`` returns

    def __init__(self, net: nn.Module, kind: str = "dot"):
        super().__init__()
        if kind not in ("dot", "l2"):
            raise ValueError(f"energy kind must be 'dot' or 'l2', got {kind!r}")
        self.net, self.kind = net, kind
        _twice_differentiable(net)

    @property
    def features(self) -> Tensor | None:
        return getattr(self.net, "features", None)

    def energy(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        """Shape (B, ...) -> (B,)."""
        h = self.net(x, t, y)
        if self.kind == "dot":
            return -(h * x).reshape(x.shape[0], -1).sum(dim=1)
        return 0.5 * h.pow(2).reshape(x.shape[0], -1).sum(dim=1)

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return EnergyField(self.energy, create_graph=self.training)(x, t, y)


class ScalarEnergy(nn.Module):
    r"""A network whose output *is* the energy, shape (B,) (contrastive divergence); ``forward`` returns the
    field :math:`-\nabla E` for the samplers.

    The network sees ``data_scale * x``: under spectral normalisation every layer but the output is
    1-Lipschitz, so this sets how fast, per data unit, the energy's features can vary.
    """

    has_energy = True  # fields.energy_source: ``energy(x, t, y)`` is the energy whose -gradient ``forward`` returns

    def __init__(self, net: nn.Module, data_scale: float = 1.0):
        super().__init__()
        self.net = net
        self.data_scale = float(data_scale)
        _twice_differentiable(net)  # Improved CD's KL term differentiates through a Langevin step

    @property
    def features(self) -> Tensor | None:
        return getattr(self.net, "features", None)

    def energy(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return self.net(self.data_scale * x, None, y)  # exact at 1: x * 1.0 == x

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return EnergyField(self.energy)(x, t, y)


def spectral_normalise(net: nn.Module) -> nn.Module:
    """Spectral normalisation on every linear and convolution layer but the output layer (IGEBM keeps the
    last layer free), in place; returns ``net``.

    Layers that start at zero are left free too: their spectral norm is 0 (a 0/0 division). In the
    transformer these are adaLN-Zero's modulations, functions of the class and time, not of x.
    """
    last = getattr(net, "output_layer", None)
    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)) and module is not last and module.weight.any():
            nn.utils.parametrizations.spectral_norm(module)
    return net
