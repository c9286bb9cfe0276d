"""CDRL on digits: one class-conditional run (label dropout 0.1) gives unconditional samples (the null
label) and guided conditional ones.

Prints FD-digits (as benchmarks/digits.py: Fréchet distance in the fixed digit classifier's features,
against the 360 held-out test digits) of unconditional samples at K = 15 / 8 / 5 / 3 Langevin steps per
level with the wall time of each, EqM's and FM's FD from the runs of benchmarks/digits.py when present,
and the class accuracy of conditional samples at each guidance weight. Saves sample grids.

    python benchmarks/recovery_digits.py --out bench-runs      # ~70 minutes of training on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import trained
from PIL import Image

from energen import Run
from energen.data import load_dataset
from energen.metrics import digits_classifier, frechet_distance
from energen.plotting import image_grid

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--n", type=int, default=2000)
p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 2.0, 4.0])
a = p.parse_args()
root = Path(a.out)
clf = digits_classifier()
ds = load_dataset("digits")
ref_features = clf.features(ds.ref_x)


def save_grid(x, name):
    grid = np.kron(image_grid(x[:100].numpy(), ds.info), np.ones((4, 4, 1), dtype=np.uint8))
    Image.fromarray(grid).save(root / f"{name}.png")


run, _ = trained(root, "digits-cdrl-cond", method="cdrl", data="digits", steps=a.steps, conditional=True)
print("| method | K per level | FD-digits | seconds |\n|---|---|---|---|")
for k in (15, 8, 5, 3):
    t0 = time.time()
    x, _ = run.sample(a.n, seed=1, settings=replace(run.default_sampler, steps=k))
    seconds = time.time() - t0
    print(f"| cdrl (unconditional) | {k} | {frechet_distance(clf.features(x), ref_features):.2f} | {seconds:.0f} |",
          flush=True)  # fmt: skip
    if k == 15:
        save_grid(x, "digits-cdrl")
for method in ("eqm", "fm"):
    if (root / f"digits-{method}" / "sampler.json").exists():
        x, _ = Run(root / f"digits-{method}").sample(a.n, seed=1)
        print(f"| {method} | – | {frechet_distance(clf.features(x), ref_features):.2f} | – |")

print("\n| cfg | class accuracy |\n|---|---|")
for w in a.cfg:
    accs, grid = [], []
    for c in range(10):
        x, _ = run.sample(200, seed=1000 * c, label=c, cfg_scale=w)
        accs.append(float((clf.predict(x) == c).mean()))
        grid.append(x[:10])
    print(f"| {w:g} | {np.mean(accs):.3f} |", flush=True)
    save_grid(torch.cat(grid), f"digits-cdrl-cond-cfg{w:g}")
