"""CDRL and DRL on digits: one class-conditional run each (label dropout 0.1) gives unconditional samples
(the null label) and guided conditional ones.

Prints FD-digits (as benchmarks/digits.py: Fréchet distance in the fixed digit classifier's features,
against the 360 held-out test digits) of unconditional samples at K = 15 / 8 / 5 / 3 Langevin steps per
level (and DRL's training K = 30) with the wall time of each, EqM's and FM's FD from the runs of
benchmarks/digits.py when present, and the class accuracy of conditional samples at each guidance weight.
Saves sample grids.

    python benchmarks/recovery_digits.py --out bench-runs   # training: ~25 (CDRL) + ~50 (DRL) min, 2 CPU cores
"""

from __future__ import annotations

import time
from pathlib import Path

from common import digits_args, print_class_accuracy, save_digit_grid, trained

from energen import Run
from energen.data.datasets import load_dataset
from energen.evaluation.metrics import digits_classifier, frechet_distance

a = digits_args()
root = Path(a.out)
clf = digits_classifier()
ds = load_dataset("digits")
ref_features = clf.features(ds.ref_x)


def save_grid(x, name):
    save_digit_grid(x, ds.info, root / f"{name}.png")


runs = {m: trained(root, f"digits-{m}-cond", method=m, data="digits", steps=a.steps, conditional=True)[0]
        for m in ("cdrl", "drl")}  # fmt: skip
print("| method | K per level | FD-digits | seconds |\n|---|---|---|---|")
for method, run in runs.items():
    for k in sorted({run.cfg.langevin_steps, 15, 8, 5, 3}, reverse=True):
        t0 = time.time()
        x, _ = run.sample(a.n, seed=1, settings=run.default_sampler.with_options(steps=k))
        seconds = time.time() - t0
        print(f"| {method} (unconditional) | {k} | {frechet_distance(clf.features(x), ref_features):.2f} | "
              f"{seconds:.0f} |", flush=True)  # fmt: skip
        if k == run.cfg.langevin_steps:
            save_grid(x, f"digits-{method}")
for method in ("eqm", "fm"):
    if (root / f"digits-{method}" / "sampler.json").exists():
        x, _ = Run(root / f"digits-{method}").sample(a.n, seed=1)
        print(f"| {method} | – | {frechet_distance(clf.features(x), ref_features):.2f} | – |")

print_class_accuracy(runs, clf, a.cfg, root)
