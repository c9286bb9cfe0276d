"""Can the CD energy network represent the rings? Fits the spectrally normalised energy MLP by regression to
the exact -log density of ``rings`` (clipped at 9; normalised coordinates, uniform points on [-2.6, 2.6]^2)
at a given data scale, and prints the loss and the radial profile along the x axis next to the target.

    python benchmarks/rings_fit.py --data-scale 3
    python benchmarks/rings_fit.py --data-scale 6
"""

from __future__ import annotations

import argparse
import time

import torch

from energen.data.datasets import load_dataset
from energen.networks.base import MODELS, NetSpec
from energen.networks.energy import ScalarEnergy, spectral_normalise

p = argparse.ArgumentParser()
p.add_argument("--data-scale", type=float, default=6.0)
p.add_argument("--steps", type=int, default=3000)
a = p.parse_args()
torch.manual_seed(0)
std = load_dataset("rings").info.scale[0]


def target(x: torch.Tensor) -> torch.Tensor:
    """-log density of rings (radii 0.75 k, k = 1..4, radial noise 0.08), up to a constant, clipped at 9."""
    r = (x * std).norm(dim=1)
    k = torch.arange(1, 5) * 0.75
    p = torch.exp(-((r[:, None] - k) ** 2) / (2 * 0.08**2)).sum(1) / (r + 1e-3)
    return (-torch.log(p + 1e-30)).clamp(max=9.0)


model = ScalarEnergy(spectral_normalise(MODELS.get("mlp")(NetSpec((2,), scalar=True))), data_scale=a.data_scale)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
t0 = time.time()
for i in range(a.steps):
    x = (torch.rand(1024, 2) * 2 - 1) * 2.6
    loss = (model.energy(x) - target(x)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i % 500 == 0 or i == a.steps - 1:
        print(f"step {i}: mean squared error {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
with torch.no_grad():
    r = torch.linspace(0, 3.4, 35)
    x = torch.stack([r, torch.zeros_like(r)], 1) / std
    for ri, e, t in zip(r.tolist(), model.energy(x).tolist(), target(x).tolist(), strict=True):
        print(f"r = {ri:.1f}: E {e:6.2f}, target {t:6.2f}")
