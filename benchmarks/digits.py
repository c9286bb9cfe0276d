"""Digits (scikit-learn 8x8): EqM versus flow matching, and class-conditional EqM with guidance.

Same network and training budget for both methods; each samples with its default sampler and the same
number of field evaluations (100). Prints FD-digits (Fréchet distance in the features of a fixed digit
classifier, see energen.metrics) against the 360 held-out test digits, the data's own half-vs-half
floor, the accuracy of conditional samples under the same classifier, and saves sample grids.

    python benchmarks/digits.py --out bench-runs        # ~12 minutes on 2 CPU cores
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import class_samples, digits_args, save_digit_grid, trained

from energen.data.datasets import load_dataset
from energen.evaluation.metrics import digits_classifier, frechet_distance

a = digits_args()
root = Path(a.out)
clf = digits_classifier()
ds = load_dataset("digits")
ref = ds.ref_x
allx = torch.cat([ds.train_x, ds.ref_x])
half = len(allx) // 2
perm = torch.randperm(len(allx), generator=torch.Generator().manual_seed(0))
floor = frechet_distance(clf.features(allx[perm[:half]]), clf.features(allx[perm[half:]]))
print(f"classifier test accuracy {clf.test_accuracy:.3f}; FD-digits floor (data half vs half) {floor:.2f}\n")


def save_grid(x, name):
    save_digit_grid(x, ds.info, root / f"{name}.png")


print("| method | FD-digits | NFE | sampler |\n|---|---|---|---|")
for method in ("eqm", "fm"):
    run, _ = trained(root, f"digits-{method}", method=method, data="digits", steps=a.steps)
    x, o = run.sample(a.n, seed=1)
    fd = frechet_distance(clf.features(x), clf.features(ref))
    s = run.default_sampler
    print(f"| {method} | {fd:.2f} | {o.nfe} | {s.sampler} K={s.steps} eta={s.step_size:.4g} T0={s.noise:g} |")
    save_grid(x, f"digits-{method}")

run, _ = trained(root, "digits-eqm-cond", method="eqm", data="digits", steps=a.steps, conditional=True)
print("\n| cfg | class accuracy | per-class FD (mean) |\n|---|---|---|")
for w in a.cfg:
    accs, fds, grid = [], [], []
    for c, x in class_samples(run, w):
        accs.append(float((clf.predict(x) == c).mean()))
        fds.append(frechet_distance(clf.features(x), clf.features(ref[ds.ref_y == c])))
        grid.append(x[:10])
    print(f"| {w:g} | {np.mean(accs):.3f} | {np.mean(fds):.2f} |")
    save_grid(torch.cat(grid), f"digits-eqm-cond-cfg{w:g}")
