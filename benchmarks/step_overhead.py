"""Training-step overhead of energen's loop against one bare forward + backward of the same backbone, and
against the same plus the AdamW step and EMA update that every trainer pays (the loop's own overhead).

For each model: random "latents" (4 x 32 x 32 by default, ImageNet-256 in SD-VAE space), EqM's objective
through ``energen.train`` (the one shared loop: batch, gamma draw, interpolation, loss, backward,
gradient all-reduce, clipping, AdamW, EMA, logging), against a bare loop of model(x) -> MSE -> backward
on the same batch size, device, autocast and compile settings. Step times are medians after warm-up,
measured in one run, so the ratio compares like with like. Also images/s and peak memory.

    python benchmarks/step_overhead.py --models EqM-S/2 --batch-size 8 --steps 30            # CPU
    python benchmarks/step_overhead.py --models EqM-S/2 EqM-B/2 --batch-size 256 --device cuda --compile
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from energen import TrainConfig, train
from energen.networks.base import MODELS, NetSpec

p = argparse.ArgumentParser()
p.add_argument("--models", nargs="+", default=["EqM-S/2"])
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--steps", type=int, default=30)
p.add_argument("--warmup", type=int, default=10)
p.add_argument("--size", type=int, default=32)
p.add_argument("--device", default="cpu")
p.add_argument("--compile", action="store_true")
p.add_argument("--no-bf16", action="store_true")
a = p.parse_args()
device = torch.device(a.device)
bf16 = device.type == "cuda" and not a.no_bf16
if device.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def peak_memory_gib() -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB; the whole process


def reset_peak() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def bare_step_seconds(name: str, shape: tuple[int, ...], classes: int, trainer: bool) -> list[float]:
    """model(x) -> MSE -> backward; with ``trainer``, plus the AdamW step and EMA update any trainer has."""
    torch.manual_seed(0)
    net = MODELS.get(name)(NetSpec(shape, num_classes=classes)).to(device).train()
    params = list(net.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda" or None)
    if a.compile:
        net.compile()
    x = torch.randn(a.batch_size, *shape, device=device)
    y = torch.randint(0, classes, (a.batch_size,), device=device)
    target = torch.randn_like(x)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for _ in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        with autocast:
            loss = (net(x, None, y).float() - target).square().mean()
        loss.backward()
        if trainer:
            opt.step()
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1e-3)
        net.zero_grad(set_to_none=True)
        loss.item()  # the loop syncs on the loss each step too
        times.append(time.perf_counter() - t0)
    return times[a.warmup :]


def loop_step_seconds(name: str, data: Path, root: Path) -> list[float]:
    cfg = TrainConfig(method="eqm", data=str(data), model=name, conditional=True, steps=a.warmup + a.steps,
                      batch_size=a.batch_size, log_every=1, ckpt_every=10**9, calibrate=False, compile=a.compile,
                      bf16=not a.no_bf16, device=a.device, lr=1e-4, warmup_samples=0)  # fmt: skip
    run = root / name.replace("/", "_")
    train(cfg, run, progress=False)
    with open(run / "log.csv") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    return list(np.diff(seconds)[a.warmup - 1 :])  # the final checkpoint is written after the last row


shape = (4, a.size, a.size)
print(f"device {device}, batch {a.batch_size}, inputs {shape}, bf16 {bf16}, compile {a.compile}, "
      f"{torch.get_num_threads()} CPU threads")  # fmt: skip
print("| model | bare fwd+bwd (s) | + AdamW + EMA (s) | energen step (s) | ratio to fwd+bwd "
      "| ratio to fwd+bwd+AdamW+EMA | images/s | peak memory (GiB) |")  # fmt: skip
print("|---|---|---|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    n = 4 * a.batch_size
    classes = min(1000, n)
    data = tmp / "latents.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32), y=np.arange(n) % classes)
    for name in a.models:
        bare = statistics.median(bare_step_seconds(name, shape, classes, trainer=False))
        minimal = statistics.median(bare_step_seconds(name, shape, classes, trainer=True))
        reset_peak()
        ours = statistics.median(loop_step_seconds(name, data, tmp))
        print(f"| {name} | {bare:.4f} | {minimal:.4f} | {ours:.4f} | {ours / bare:.3f} | {ours / minimal:.3f} | "
              f"{a.batch_size / ours:.1f} | {peak_memory_gib():.2f} |", flush=True)  # fmt: skip
