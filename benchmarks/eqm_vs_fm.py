"""EqM versus flow matching on 2-D toys: same network, same training budget, each with its default sampler.

Prints a Markdown table of sliced W1 (in data standard deviations; lower is better) of 5,000 samples
against 10,000 fresh data points, with the floor set by two independent data sets of the same sizes.

    python benchmarks/eqm_vs_fm.py --out bench-runs            # ~6 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import reference, sw1, trained

from energen.data import load_dataset

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--data", nargs="+", default=["checkerboard", "8gaussians", "2spirals"])
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--model", default="mlp")
p.add_argument("--n", type=int, default=5000)
a = p.parse_args()
root = Path(a.out)

print("| data | EqM (GD, calibrated) | FM (Euler) | EqM / FM | floor | EqM NFE | FM NFE |")
print("|---|---|---|---|---|---|---|")
for data in a.data:
    _, ref = reference(data)
    base = dict(data=data, steps=a.steps, model=a.model)
    eqm, _ = trained(root, f"{data}-eqm", method="eqm", **base)
    fm, _ = trained(root, f"{data}-fm", method="fm", **base)
    xe, oe = eqm.sample(a.n, seed=1)
    xf, of = fm.sample(a.n, seed=1)
    floor = sw1(eqm, load_dataset(data).reference(a.n, seed=777)[0], ref)
    e, f = sw1(eqm, xe, ref), sw1(fm, xf, ref)
    print(f"| {data} | {e:.4f} | {f:.4f} | {e / f:.2f} | {floor:.4f} | {oe.nfe} | {of.nfe} |", flush=True)
