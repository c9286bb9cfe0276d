"""Networks: ``net(x, t, y) -> Tensor`` of x's shape, and the explicit-energy wrapper of EqM-E.

Every network here maps x of shape (B, *data_shape) to the same shape. ``t`` (shape (B,)) is used only
when the network was built with ``time_conditioned=True`` (flow matching); EqM networks are built without
a time input at all, so they cannot depend on it. ``y`` (shape (B,), int) is used when
``num_classes > 0``; label ``num_classes`` is the null label of classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .fields import EnergyField
from .registry import Registry


@dataclass(frozen=True)
class NetSpec:
    """What a network must know about the data and the method."""

    data_shape: tuple[int, ...]
    time_conditioned: bool = False
    num_classes: int = 0
    scalar: bool = False  # one output per sample (an energy) instead of a tensor of x's shape


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1] followed by a small MLP (as DiT's ``TimestepEmbedder``).

    The features are cos and sin of ``t * t_scale`` times frequencies from 1 down to 1/max_period;
    ``t_scale`` defaults to ``max_period`` (SiT's transformer uses 1).
    """

    def __init__(self, dim: int, freq_dim: int = 64, max_period: float = 1000.0, t_scale: float | None = None):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.t_scale = max_period if t_scale is None else t_scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = (t.float() * self.t_scale)[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=1))


def conditioning(time: nn.Module | None, label: nn.Embedding | None, num_classes: int, x: Tensor,
                 t: Tensor | None, y: Tensor | None) -> Tensor | None:  # fmt: skip
    """The conditioning vector of a network: time embedding plus class embedding, either optional; ``None``
    when the network has neither. A missing ``y`` is the null label ``num_classes`` (unconditional)."""
    cond = None
    if time is not None:
        if t is None:
            raise ValueError("this network is time-conditioned: pass t")
        cond = time(t)
    if label is not None:
        if y is None:
            y = torch.full(x.shape[:1], num_classes, device=x.device, dtype=torch.long)
        cond = label(y) if cond is None else cond + label(y)
    return cond


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.lin1 = nn.Linear(dim, dim)
        self.lin2 = nn.Linear(dim, dim)

    def forward(self, h: Tensor, cond: Tensor | None) -> Tensor:
        z = self.norm(h)
        if cond is not None:
            z = z + cond
        return h + self.lin2(nn.functional.silu(self.lin1(nn.functional.silu(z))))


class MLP(nn.Module):
    """A residual MLP on flattened inputs with optional time and class embeddings added to each block.

    Returns a tensor of the input's shape, or shape (B,) when ``spec.scalar`` (an energy network).

    ``self.features`` is the last block's output, read by the optional dispersive loss.
    """

    def __init__(self, spec: NetSpec, *, width: int = 256, depth: int = 3):
        super().__init__()
        self.spec = spec
        self.dim = math.prod(spec.data_shape)
        self.inp = nn.Linear(self.dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, 1 if spec.scalar else self.dim))
        self.time = TimeEmbedding(width) if spec.time_conditioned else None
        self.label = nn.Embedding(spec.num_classes + 1, width) if spec.num_classes > 0 else None
        self.features: Tensor | None = None

    @property
    def output_layer(self) -> nn.Linear:
        return self.out[-1]

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        cond = conditioning(self.time, self.label, self.spec.num_classes, x, t, y)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, cond)
        self.features = h
        out = self.out(h)
        return out[:, 0] if self.spec.scalar else out.reshape(x.shape)


class EnergyResBlock(nn.Module):
    """IGEBM's residual block: conv -> leaky ReLU -> conv times a learned scale (0 at init) + bypass, then 2x2
    average pooling when ``down``; a class label scales and shifts the first conv's output (FiLM, as the
    reference's per-class gains and biases)."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.scale = nn.Parameter(torch.zeros(()))  # not a zero-initialised conv: spectral norm would divide by 0
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.film = nn.Embedding(num_classes + 1, 2 * c_out) if num_classes > 0 else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
        self.down = down

    def forward(self, h: Tensor, y: Tensor | None) -> Tensor:
        z = self.conv1(h)
        if self.film is not None:
            gain, bias = self.film(y)[:, :, None, None].chunk(2, dim=1)
            z = z * (1 + gain) + bias
        z = self.scale * self.conv2(nn.functional.leaky_relu(z, 0.2))
        out = nn.functional.leaky_relu(self.skip(h) + z, 0.2)
        return nn.functional.avg_pool2d(out, 2) if self.down else out


class ResNetEnergy(nn.Module):
    """The residual energy network of IGEBM for images: conv, residual blocks with average-pool downsampling,
    leaky ReLU, a spatial sum and a linear map to one energy per sample. Scalar networks only (``cd``)."""

    def __init__(self, spec: NetSpec, *, width: int = 64, blocks: int = 3):
        super().__init__()
        if len(spec.data_shape) != 3 or not spec.scalar or spec.time_conditioned:
            raise ConfigError("model 'resnet' is an image energy network: it needs image data and --method cd")
        self.spec = spec
        c, h, _ = spec.data_shape
        self.inp = nn.Conv2d(c, width, 3, padding=1)
        widths = [width * 2 ** min(i, 2) for i in range(blocks)]
        chans = [width, *widths]
        downs = [i < blocks - 1 and h // 2 ** (i + 1) >= 2 for i in range(blocks)]
        self.blocks = nn.ModuleList(EnergyResBlock(chans[i], chans[i + 1], down=downs[i],
                                                   num_classes=spec.num_classes) for i in range(blocks))  # fmt: skip
        self.out = nn.Linear(chans[-1], 1)
        self.features: Tensor | None = None

    @property
    def output_layer(self) -> nn.Linear:
        return self.out

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        if self.spec.num_classes > 0 and y is None:
            y = torch.full(x.shape[:1], self.spec.num_classes, device=x.device, dtype=torch.long)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, y)
        self.features = nn.functional.leaky_relu(h, 0.2).sum(dim=(2, 3))
        return self.out(self.features)[:, 0]


MODELS: Registry = Registry("model")
MODELS.add("mlp-small", lambda spec: MLP(spec, width=128, depth=2))
MODELS.add("mlp", lambda spec: MLP(spec, width=256, depth=3))
MODELS.add("mlp-large", lambda spec: MLP(spec, width=512, depth=4))
MODELS.add("resnet", lambda spec: ResNetEnergy(spec))


def default_model(data_shape: tuple[int, ...]) -> str:
    """The model a data set gets when the user names none: chosen from the data's dimension."""
    return "mlp" if math.prod(data_shape) <= 16 else "mlp-large"


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
