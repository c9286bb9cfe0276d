"""Diffusion recovery likelihood on 2-D toys: CDRL and DRL beside flow matching, fewer Langevin steps at
sampling time, and what a training step costs.

1. Sliced W1 (data standard deviations, 5,000 samples against 10,000 fresh points; floor: two data sets)
   of CDRL and DRL at default settings and of flow matching (same "mlp" network, same 4,000 steps;
   the FM runs are the ones of eqm_vs_fm.py, trained here if missing).
2. CDRL and DRL sampled with K = 15 / 8 / 5 / 3 Langevin steps per level (the step size rescaled to keep
   K s^2), each with its sliced W1 and wall time.
3. The cost of one training step as a multiple of one forward+backward of the energy network on the
   same batch (the chain makes it inherently about K times more).

    python benchmarks/recovery.py --out bench-runs       # ~15 minutes per toy per method on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import reference, sw1, trained

from energen import TrainConfig
from energen.data.datasets import load_dataset
from energen.methods.registry import METHODS
from energen.training.loop import resolve_config

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--data", nargs="+", default=["checkerboard", "8gaussians", "2spirals"])
p.add_argument("--methods", nargs="+", default=["cdrl", "drl"])
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--model", default="mlp")
p.add_argument("--n", type=int, default=5000)
p.add_argument("--sweep", nargs="*", default=["checkerboard"], help="data sets for the K sweep")
p.add_argument("--parts", nargs="+", default=["table", "sweep", "cost"], choices=["table", "sweep", "cost"])
a = p.parse_args()
root = Path(a.out)


def run_of(data: str, method: str):
    return trained(root, f"{data}-{method}", method=method, data=data, steps=a.steps, model=a.model)[0]


if "table" in a.parts:
    print("| data | " + " | ".join(m.upper() for m in a.methods) + " | FM | floor | CDRL / FM | CDRL / floor |")
    print("|---" * (len(a.methods) + 5) + "|")
for data in a.data if "table" in a.parts else []:
    ds, ref = reference(data)
    scores = {}
    for method in (*a.methods, "fm"):
        run = run_of(data, method)
        x, _ = run.sample(a.n, seed=1)
        scores[method] = sw1(run, x, ref)
    floor = sw1(run, ds.reference(a.n, seed=777)[0], ref)
    c = scores.get("cdrl", float("nan"))
    cells = " | ".join(f"{scores[m]:.4f}" for m in (*a.methods, "fm"))
    print(f"| {data} | {cells} | {floor:.4f} | {c / scores['fm']:.2f} | {c / floor:.2f} |", flush=True)

for data in a.sweep if "sweep" in a.parts else []:
    _, ref = reference(data)
    print(f"\n{data}: Langevin steps per level at sampling time ({a.n} samples)\n")
    print("| method | K | sliced W1 | seconds |\n|---|---|---|---|")
    for method in a.methods:
        run = run_of(data, method)
        for k in sorted(
            {k for k in (run.cfg.langevin_steps, 15, 8, 5, 3) if k <= run.cfg.langevin_steps}, reverse=True
        ):
            s = run.default_sampler.with_options(steps=k)
            t0 = time.time()
            x, _ = run.sample(a.n, seed=1, settings=s)
            print(f"| {method} | {k} | {sw1(run, x, ref):.4f} | {time.time() - t0:.1f} |", flush=True)


def mean_seconds(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def step_cost(method: str, data: str) -> tuple[int, float]:
    """(K, seconds of one training step / seconds of one forward+backward of the energy net), batch 256."""
    ds = load_dataset(data)
    cfg = resolve_config(TrainConfig(method=method, data=data, model=a.model), ds.info)
    m = METHODS.get(method)
    model, objective = m.build_model(cfg, ds.info.shape, 0), m.objective(cfg, 0, ds.info)
    gen = torch.Generator().manual_seed(0)
    x, _ = ds.batch(0, 256, gen)
    i = torch.randint(0, cfg.levels, (256,), generator=gen)
    fb = mean_seconds(lambda: model.h(x, i).sum().backward())
    step = mean_seconds(lambda: objective(model, x, None, gen).per_sample.mean().backward())
    return cfg.langevin_steps, step / fb


if "cost" in a.parts:
    print("\nCost of one training step, as a multiple of one forward+backward of the energy network (batch 256)\n")
    print("| method | K | step / (fwd+bwd) |\n|---|---|---|")
for method in a.methods if "cost" in a.parts else []:
    k, ratio = step_cost(method, a.data[0])
    print(f"| {method} | {k} | {ratio:.1f} |", flush=True)
