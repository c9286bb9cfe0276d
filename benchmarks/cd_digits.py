"""Contrastive divergence on digits: one class-conditional run (label dropout 0.1) per variant gives
unconditional samples (the null label) and guided conditional ones.

Prints FD-digits (as benchmarks/digits.py: Fréchet distance in the fixed digit classifier's features, against
the 360 held-out test digits) of unconditional samples by Langevin chain length, from noise and from the
replay buffer; the FD of the EqM, FM and CDRL runs of the other digits benchmarks when present; and the class
accuracy of conditional samples at each guidance weight. Every variant uses the network of the EqM, FM and CDRL
digits runs (``mlp-large``; the residual ``resnet`` energy costs ~7 s a step on one CPU thread) and the image
chain defaults. Variants: ``cd`` (the defaults) and ``icd`` (all three Improved-CD options: the KL term, the
entropy term and shift augmentation). Saves sample grids.

    python benchmarks/cd_digits.py --out bench-runs          # training: ~35 minutes a variant, 1 CPU thread
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import print_class_accuracy, save_digit_grid, trained

from energen import Run
from energen.data.datasets import load_dataset
from energen.evaluation.metrics import digits_classifier, frechet_distance

VARIANTS = {"cd": {}, "icd": {"icd_kl": 1.0, "icd_entropy": 0.3, "icd_augment": True}}

p = __import__("argparse").ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--steps", type=int, default=2000)
p.add_argument("--n", type=int, default=2000)
p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 2.0, 4.0])
p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["cd"])
p.add_argument("--lengths", type=int, nargs="+", default=[20, 60, 200])
a = p.parse_args()
root = Path(a.out)
clf = digits_classifier()
ds = load_dataset("digits")
ref_features = clf.features(ds.ref_x)


def fd(x: torch.Tensor) -> float:
    return frechet_distance(clf.features(x), ref_features)


runs = {v: trained(root, f"digits-{v}-cond", method="cd", data="digits", steps=a.steps, conditional=True,
                   model="mlp-large", **VARIANTS[v])[0] for v in a.variants}  # fmt: skip
print("| variant | start | " + " | ".join(f"K = {k}" for k in a.lengths) + " |")
print("|---|---|" + "---|" * len(a.lengths))
for v, run in runs.items():
    for start in ("noise", "buffer"):
        cells = []
        for k in a.lengths:
            x, _ = run.sample(a.n, seed=1, settings=run.default_sampler.with_options(steps=k), start=start)
            cells.append(f"{fd(x):.2f}")
            if start == "noise" and k == run.default_sampler.steps:
                save_digit_grid(x, ds.info, root / f"digits-{v}.png")
        print(f"| {v} | {start} | " + " | ".join(cells) + " |", flush=True)
for name in ("digits-eqm", "digits-fm", "digits-cdrl-cond"):  # each with its own default sampler
    if (root / name / "sampler.json").exists():
        x, _ = Run(root / name).sample(a.n, seed=1)
        print(f"| {name.removeprefix('digits-')} | noise | {fd(x):.2f} |")

print_class_accuracy(runs, clf, a.cfg, root, what="variant")
