"""Sampling throughput of energen's NAG-GD with guidance against a bare loop of the same updates.

For each model (random weights: throughput does not depend on them): ``--steps`` updates of Nesterov GD at
eta 0.0017, mu 0.3, with classifier-free guidance 1.5 by the reference's rule (one batched call of 2B rows per
update), through energen's sampler (:class:`energen.samplers.nesterov.Nesterov` on
:class:`energen.fields.GuidedField`), against a bare loop written out here (look-ahead, doubled batch, guided
channels, update). Prints network evaluations per second (NFE/s, one NFE = one guided update of the batch),
images/s, the ratio of the two loops and peak memory, measured in one run.

    python benchmarks/sampling_throughput.py --models DiT-2x64-h4/2 --batch-size 8 --steps 20          # CPU
    python benchmarks/sampling_throughput.py --models EqM-B/2 EqM-XL/2 --batch-size 125 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from energen.fields import GuidedField
from energen.networks.base import MODELS, NetSpec
from energen.samplers.nesterov import Nesterov

p = argparse.ArgumentParser()
p.add_argument("--models", nargs="+", default=["EqM-S/2"])
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--size", type=int, default=32)
p.add_argument("--device", default="cpu")
p.add_argument("--no-bf16", action="store_true")
a = p.parse_args()
device = torch.device(a.device)
bf16 = device.type == "cuda" and not a.no_bf16
ETA, MU, W, CLASSES = 0.0017, 0.3, 1.5, 1000


def sync() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(net, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    null = torch.full_like(y, CLASSES)
    x, m = x0.clone(), torch.zeros_like(x0)
    for _ in range(a.steps):
        look = x + ETA * MU * m
        out = net(torch.cat([look, look]), None, torch.cat([y, null]))
        cond, uncond = out.chunk(2)
        f = cond.clone()
        f[:, :3] = uncond[:, :3] + W * (cond[:, :3] - uncond[:, :3])
        m = f
        x = x + ETA * f
    return x


def timed(fn, *args) -> float:
    sync()
    t0 = time.perf_counter()
    fn(*args)
    sync()
    return time.perf_counter() - t0


shape = (4, a.size, a.size)
print(f"device {device}, batch {a.batch_size}, inputs {shape}, bf16 {bf16}, {a.steps} guided NAG updates, "
      f"{torch.get_num_threads()} CPU threads")  # fmt: skip
print("| model | bare loop (s) | energen (s) | ratio | NFE/s | images/s at 249 updates | peak memory (GiB) |")
print("|---|---|---|---|---|---|---|")
for name in a.models:
    torch.manual_seed(0)
    net = MODELS.get(name)(NetSpec(shape, num_classes=CLASSES)).to(device).eval().requires_grad_(False)
    x0 = torch.randn(a.batch_size, *shape, device=device)
    y = torch.randint(0, CLASSES, (a.batch_size,), device=device)
    field = GuidedField(net, scale=W, null_label=CLASSES, rule="reference")
    sampler = Nesterov(steps=a.steps, step_size=ETA, momentum=MU)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        bare(net, x0[:1], y[:1])  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t_bare = timed(bare, net, x0, y)
        t_ours = timed(sampler, field, x0, y)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    print(f"| {name} | {t_bare:.3f} | {t_ours:.3f} | {t_ours / t_bare:.3f} | {a.steps / t_ours:.2f} | "
          f"{a.batch_size / t_ours * a.steps / 249:.3f} | {peak:.2f} |", flush=True)  # fmt: skip
