"""Equilibrium Matching on a 2-D toy in ~60 lines, from the library's parts (no trainer).

    python examples/eqm_2d.py          # about a minute on a laptop CPU; writes eqm_2d.png

The pieces: a data set, a network that never sees the noise level, the EqM objective (linear path,
target (x - eps) * c(gamma)), and a gradient-descent sampler that follows the learned field.
"""

import copy

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from energen.data.datasets import load_dataset  # noqa: E402
from energen.evaluation.metrics import sliced_w1  # noqa: E402
from energen.interpolants import TruncatedDecay  # noqa: E402
from energen.losses.eqm import FieldMatching  # noqa: E402
from energen.networks.base import NetSpec  # noqa: E402
from energen.networks.mlp import MLP
from energen.samplers.gradient_descent import GradientDescent  # noqa: E402

torch.manual_seed(0)
data = load_dataset("8gaussians")
net = MLP(NetSpec((2,)), width=256, depth=3)
ema = copy.deepcopy(net).requires_grad_(False)
objective = FieldMatching(weighting=TruncatedDecay(a=0.8, scale=4.0), time_conditioned=False)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
gen = torch.Generator().manual_seed(0)

for step in range(3000):
    x, _ = data.batch(step, 256, gen)  # normalised data, shape (256, 2)
    loss = objective(net, x, None, gen).per_sample.mean()  # losses are per sample; we reduce
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():  # EMA with a half-life of 25k samples: beta = 0.5 ** (256 / 25_000)
        for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
            pe.lerp_(p, 1 - 0.5 ** (256 / 25_000))
    if step % 500 == 0:
        print(f"step {step:5d}  loss {loss.item():.4f}")

# Gradient descent on the learned landscape: total time eta * K ~ 0.3-0.4 is the sweet spot (docs/results/eqm.md).
sampler = GradientDescent(steps=100, step_size=0.0035)
out = sampler(ema, torch.randn(5000, 2, generator=torch.Generator().manual_seed(1)))
samples = data.info.denormalize(out.x)
ref, _ = data.reference(10_000)
print(f"sliced W1 to fresh data: {sliced_w1(samples, ref):.4f}")

plt.figure(figsize=(5, 5))
plt.scatter(ref[:, 0], ref[:, 1], s=1, c="lightgray", label="data")
plt.scatter(samples[:, 0], samples[:, 1], s=1, c="tab:red", label="EqM samples")
plt.legend(loc="upper right")
plt.gca().set_aspect("equal")
plt.savefig("eqm_2d.png", dpi=100, bbox_inches="tight")
