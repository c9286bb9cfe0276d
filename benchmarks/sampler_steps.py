"""Sample quality against sampler steps for an EqM model: GD, Nesterov (NAG), adaptive stopping, noise.

Uses (or trains) the EqM run of ``eqm_vs_fm.py`` for one data set and prints three Markdown tables of
sliced W1 (data standard deviations, 5,000 samples vs 10,000 fresh points):

1. a fixed step size (the calibrated one) and a growing step count K: the quality-versus-budget curve;
2. a fixed total time eta*K (the calibrated one) split into more or fewer steps;
3. adaptive per-sample stopping at several tolerances: mean steps used next to quality, with the
   calibrated fixed budget and a 10x budget for reference; and annealed Langevin noise.

    python benchmarks/sampler_steps.py --out bench-runs --data checkerboard      # ~3 minutes
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import reference, sw1, trained

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--data", default="checkerboard")
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--model", default="mlp")
p.add_argument("--n", type=int, default=5000)
a = p.parse_args()

run, _ = trained(Path(a.out), f"{a.data}-eqm", method="eqm", data=a.data, steps=a.steps, model=a.model)
_, ref = reference(a.data)
d = run.default_sampler
eta, horizon = d.step_size, d.steps * d.step_size
print(f"calibrated default: {d.sampler}, K={d.steps}, eta={eta:.4g}, eta*K={horizon:.3g}\n")

ks = [5, 10, 25, 50, 100, 150, 200, 300, 500, 1000]
print(f"1. fixed step size eta={eta:.4g}")
print("| K | eta*K | GD | NAG (mu=0.3) |\n|---|---|---|---|")
_, gd = run.sample(a.n, seed=1, settings=d.with_options(steps=max(ks)), record=ks)
_, nag = run.sample(a.n, seed=1, settings=d.switch("nag").with_options(steps=max(ks)), record=ks)
for k in ks:
    print(f"| {k} | {k * eta:.3g} | {sw1(run, gd.snapshots[k], ref):.4f} | {sw1(run, nag.snapshots[k], ref):.4f} |")

print(f"\n2. fixed total time eta*K={horizon:.3g}")
print("| K | eta | GD | NAG |\n|---|---|---|---|")
for k in (5, 10, 20, 50, 100, 400):
    s = d.with_options(steps=k, step_size=horizon / k)
    xg, _ = run.sample(a.n, seed=1, settings=s)
    xn, _ = run.sample(a.n, seed=1, settings=s.switch("nag"))
    print(f"| {k} | {horizon / k:.4g} | {sw1(run, xg, ref):.4f} | {sw1(run, xn, ref):.4f} |")

print("\n3. adaptive stopping (budget 10x the calibrated one) and annealed noise")
print("| sampler | tol / noise | mean steps | max steps | sliced W1 |\n|---|---|---|---|---|")
for name, s in [("GD fixed (calibrated)", d), ("GD fixed, 10x budget", d.with_options(steps=10 * d.steps))]:
    x, o = run.sample(a.n, seed=1, settings=s)
    print(f"| {name} | - | {o.steps.float().mean():.1f} | {int(o.steps.max())} | {sw1(run, x, ref):.4f} |")
for sampler in ("gd", "nag"):
    for tol in (0.25, 0.5, 1.0, 2.0):
        x, o = run.sample(a.n, seed=1, settings=d.switch(sampler).with_options(steps=10 * d.steps, tol=tol))
        print(f"| {sampler} adaptive | tol {tol} | {o.steps.float().mean():.1f} | {int(o.steps.max())} "
              f"| {sw1(run, x, ref):.4f} |")  # fmt: skip
for noise in (0.1, 0.3, 1.0):
    x, o = run.sample(a.n, seed=1, settings=d.with_options(noise=noise))
    print(f"| gd + annealed noise | T0 {noise} | {o.steps.float().mean():.1f} | {int(o.steps.max())} "
          f"| {sw1(run, x, ref):.4f} |")  # fmt: skip
