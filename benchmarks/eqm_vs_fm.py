"""EqM versus flow matching on 2-D toys: same network, same training budget, each
with its default sampler (EqM and EqM-E: calibrated GD, 100 steps; FM: 100 Euler steps).

Prints a Markdown table of sliced W1 (in data standard deviations; lower is better) of 5,000 samples
against 10,000 fresh data points, with the floor set by two independent data sets of the same sizes.

    python benchmarks/eqm_vs_fm.py --out bench-runs            # ~12 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import reference, sw1, trained

from energen.data.datasets import load_dataset

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--data", nargs="+", default=["checkerboard", "8gaussians", "2spirals"])
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--model", default="mlp")
p.add_argument("--n", type=int, default=5000)
p.add_argument("--skip-energy", action="store_true", help="leave out EqM-E (double backward, ~2x slower)")
a = p.parse_args()
root = Path(a.out)

print("| data | EqM (GD, calibrated) | EqM-E (GD, calibrated) | FM (Euler) | EqM / FM | floor | steps per sample |")
print("|---|---|---|---|---|---|---|")
for data in a.data:
    _, ref = reference(data)
    base = dict(data=data, steps=a.steps, model=a.model)
    scores, steps = {}, {}
    for method in ("eqm", "eqm-e", "fm"):
        if method == "eqm-e" and a.skip_energy:
            scores[method] = float("nan")
            continue
        run, _ = trained(root, f"{data}-{method}", method=method, **base)
        x, _ = run.sample(a.n, seed=1)
        scores[method], steps[method] = sw1(run, x, ref), run.default_sampler.steps
    floor = sw1(run, load_dataset(data).reference(a.n, seed=777)[0], ref)
    e, ee, f = scores["eqm"], scores["eqm-e"], scores["fm"]
    print(f"| {data} | {e:.4f} | {ee:.4f} | {f:.4f} | {e / f:.2f} | {floor:.4f} | {steps['eqm']} / {steps['fm']} |",
          flush=True)  # fmt: skip
