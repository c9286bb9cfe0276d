"""What the models are for, measured: denoising, in-painting, OOD detection, composition, translation x methods.

Digits tasks use the class-conditional digits runs of the other digits benchmarks (trained here when missing,
with their settings) and score with the shared digit classifier on the 360 held-out test digits:

- denoise: MSE to the clean test digit (pixels 0..16) at noise std 2, 4, 8; baselines: the noisy input and
  the best of four Gaussian blurs (chosen on the test set itself, a generous baseline);
- inpaint: lower half masked, one completion each; the classifier's accuracy on the original labels;
- ood: AUROC of the test split against uniform noise, pixel-shuffled and inverted digits (energy, or the field
  norm of implicit EqM); and "hard": runs trained on classes 0-4 only, test 0-4 against test 5-9;
- translate: test digit of class c to class c+1 (mod 10) at strength 0.5; accuracy on the target, and the MSE
  to the source beside that of random target-class samples to the same sources;
- compose (2-D): runs on two uniform disks that overlap in a lens (22% of each); the share of samples in the
  lens for the product and for each run alone.

    python benchmarks/tasks.py --out bench-runs             # a few hours of training on 2 CPU cores if no runs
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from common import trained
from scipy.ndimage import gaussian_filter

from energen import Run
from energen.data.datasets import digits_dataset, load_dataset
from energen.errors import ConfigError
from energen.evaluation.metrics import digits_classifier
from energen.plotting import plot_panels, plot_scores
from energen.tasks.composition import Expert, compose
from energen.tasks.denoising import denoise
from energen.tasks.inpainting import inpaint
from energen.tasks.ood import ood_metrics, ood_scores
from energen.tasks.translation import translate

METHODS = ["eqm", "eqm-e", "fm", "drl", "cdrl", "cd"]
# each method's class-conditional digits run, as benchmarks/digits.py, recovery_digits.py and cd_digits.py train it
DIGITS = {"eqm": dict(steps=4000), "eqm-e": dict(steps=4000), "fm": dict(steps=4000), "drl": dict(steps=4000),
          "cdrl": dict(steps=4000), "cd": dict(steps=2000, model="mlp-large")}  # fmt: skip
HARD = {"eqm": 2000, "eqm-e": 2000, "drl": 1000, "cdrl": 2000, "cd": 1000}  # steps of the 0-4 runs (CPU budget)

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
p.add_argument("--tasks", nargs="+", default=["denoise", "inpaint", "ood", "hard", "translate", "compose"])
p.add_argument("--pictures", default=None, help="folder for one picture per task (EqM)")
a = p.parse_args()
root = Path(a.out)
root.mkdir(parents=True, exist_ok=True)
pictures = None if a.pictures is None else Path(a.pictures)
clf = digits_classifier()
ds = load_dataset("digits")
x, y = ds.reference()
g = torch.Generator().manual_seed(0)
table: dict[str, dict[str, str]] = {}


def cell(task: str, method: str, value: str) -> None:
    table.setdefault(task, {})[method] = value
    print(f"{task:28s} {method:6s} {value}", flush=True)


def digits_run(method: str) -> Run:
    cond = method != "fm" or (root / "digits-fm-cond").exists()
    name = f"digits-{method}" + ("-cond" if cond else "")
    return trained(root, name, method=method, data="digits", conditional=cond, **DIGITS[method])[0]


def picture(name: str, panels) -> None:
    if pictures is not None:
        pictures.mkdir(parents=True, exist_ok=True)
        plot_panels(panels, ds.info, pictures / f"task-{name}.png")


runs = {m: digits_run(m) for m in a.methods if {"denoise", "inpaint", "ood", "translate"} & set(a.tasks)}

if "denoise" in a.tasks:
    for std in (2.0, 4.0, 8.0):
        noisy = x + std * torch.randn(x.shape, generator=g)
        blur = min(((torch.from_numpy(gaussian_filter(noisy.numpy(), sigma=(0, 0, s, s))) - x) ** 2).mean().item()
                   for s in (0.5, 0.75, 1.0, 1.5))  # fmt: skip
        cell(f"denoise std {std:g}: noisy", "-", f"{((noisy - x) ** 2).mean():.2f}")
        cell(f"denoise std {std:g}: blur", "-", f"{blur:.2f}")
        for m, run in runs.items():
            out, _ = denoise(run, noisy, noise_std=std)
            cell(f"denoise std {std:g}: MSE", m, f"{((out - x) ** 2).mean():.2f}")
            if m == "eqm" and std == 4.0:
                picture("denoise", [("noisy", noisy, 1), ("EqM", out, 1), ("clean", x, 1)])

if "inpaint" in a.tasks:
    mask = torch.ones(1, 8, 8)
    mask[:, 4:] = 0
    tr = ds.train_x  # nearest-neighbour completion by the known half: a reference point
    nearest = tr[((x[:, None, :, :4] - tr[None, :, :, :4]) ** 2).flatten(2).sum(-1).argmin(1)]
    cell(
        "inpaint: accuracy", "nearest", f"{(clf.predict(torch.where(mask.bool(), x, nearest)) == y.numpy()).mean():.3f}"
    )
    for m, run in runs.items():
        out, _ = inpaint(run, x, mask)
        cell("inpaint: accuracy", m, f"{(clf.predict(out) == y.numpy()).mean():.3f}")
        if m == "eqm":
            comp, _ = inpaint(run, x[:10], mask, completions=4, seed=1)
            picture("inpaint", [("input", x[:10], 1), ("known", x[:10] * mask, 1), ("EqM completions", comp, 4)])


def ood_sets(x: torch.Tensor) -> dict[str, torch.Tensor]:
    perm = torch.stack([torch.randperm(64, generator=g) for _ in range(len(x))])
    return {"uniform": 16 * torch.rand(x.shape, generator=g),
            "shuffled": torch.gather(x.reshape(len(x), -1), 1, perm).reshape(x.shape), "inverted": 16 - x}  # fmt: skip


def scored(run: Run, xs: torch.Tensor) -> torch.Tensor | None:
    try:
        return ood_scores(run, xs)
    except ConfigError:
        return None


if "ood" in a.tasks:
    sets = ood_sets(x)
    for m, run in runs.items():
        s_in = scored(run, x)
        for name, xo in sets.items():
            cell(
                f"ood: AUROC vs {name}",
                m,
                "n/a" if s_in is None else f"{ood_metrics(s_in, scored(run, xo))['auroc']:.3f}",
            )
        if m == "eqm" and pictures is not None and s_in is not None:
            plot_scores(s_in, scored(run, sets["shuffled"]), "EqM field norm (test digits vs pixel-shuffled)",
                        pictures / "task-ood.png")  # fmt: skip

if "hard" in a.tasks:
    data = root / "digits-0to4.npz"
    if not data.exists():
        d = digits_dataset()
        keep = d.train_y < 5
        np.savez(data, x=d.train_x[keep][:, 0].numpy(), y=d.train_y[keep].numpy())
    lo, hi = x[y < 5], x[y >= 5]
    for m in a.methods:
        if m == "fm":
            cell("ood hard: 0-4 vs 5-9 AUROC", m, "n/a")
            continue
        kw = dict(model="mlp-large") if m == "cd" else {}
        run, _ = trained(root, f"digits04-{m}", method=m, data=str(data), steps=HARD[m], **kw)
        s_lo = ood_scores(run, lo)
        cell("ood hard: 0-4 vs 5-9 AUROC", m, f"{ood_metrics(s_lo, ood_scores(run, hi))['auroc']:.3f}")
        train_lo = digits_dataset().train_x[digits_dataset().train_y < 5][:200]  # memorised? 0.5 if not
        cell("ood hard: train vs test 0-4 AUROC", m, f"{ood_metrics(ood_scores(run, train_lo), s_lo)['auroc']:.3f}")

if "translate" in a.tasks:
    target = (y + 1) % 10
    for m, run in runs.items():
        if run.num_classes == 0:
            cell("translate: target accuracy", m, "n/a (unconditional run)")
            continue
        outs, rnd = torch.empty_like(x), torch.empty_like(x)
        for c in range(10):
            sel = target == c
            outs[sel] = translate(run, x[sel], c, strength=0.5, seed=c * 1000)[0]
            rnd[sel] = run.sample(int(sel.sum()), seed=c * 1000 + 500, label=c)[0]
        cell("translate: target accuracy", m, f"{(clf.predict(outs) == target.numpy()).mean():.3f}")
        cell("translate: MSE to source", m, f"{((outs - x) ** 2).mean():.2f}")
        cell("translate: random target MSE", m, f"{((rnd - x) ** 2).mean():.2f}")
        if m == "eqm":
            picture("translate", [("source", x[:10], 1), ("to class c+1", outs[:10], 1)])

if "compose" in a.tasks:
    # two uniform disks of radius 1.5 centred at (-1, 0) and (1, 0): their overlap is a lens holding 22% of each
    centres, radius = {"A": (-1.0, 0.0), "B": (1.0, 0.0)}, 1.5
    for name, (cx, cy) in centres.items():
        path = root / f"disk{name}.npy"
        if not path.exists():
            gen = torch.Generator().manual_seed(ord(name))
            r, phi = radius * torch.rand(20000, generator=gen).sqrt(), 2 * math.pi * torch.rand(20000, generator=gen)
            np.save(path, torch.stack([cx + r * phi.cos(), cy + r * phi.sin()], 1).numpy())

    def overlap(v: torch.Tensor, margin: float = 0.05) -> float:
        """The share of points inside both disks (widened by ``margin``, the same for every sample set)."""
        inside = [(v - torch.tensor(c)).norm(dim=1) <= radius + margin for c in centres.values()]
        return float((inside[0] & inside[1]).float().mean())

    for m in ("eqm", "eqm-e", "cd"):
        if m not in a.methods:
            continue
        ra, rb = (trained(root, f"disk{k}-{m}", method=m, data=str(root / f"disk{k}.npy"), steps=3000)[0] for k in "AB")
        both, _ = compose([Expert(ra), Expert(rb)], 2000, seed=0)
        alone_a, alone_b = ra.sample(2000, seed=0)[0], rb.sample(2000, seed=0)[0]
        cell(
            "compose: share in the overlap",
            m,
            f"{overlap(both):.3f} (A {overlap(alone_a):.3f}, B {overlap(alone_b):.3f})",
        )
        if m == "eqm" and pictures is not None:
            plot_panels([("EqM on disk A", alone_a, 1), ("EqM on disk B", alone_b, 1), ("A x B (compose)", both, 1)],
                        ra.info, pictures / "task-compose.png")  # fmt: skip

print()
methods = ["-", "nearest", *a.methods]
print("| task | " + " | ".join(m for m in methods) + " |")
print("|---|" + "---|" * len(methods))
for task, row in table.items():
    print(f"| {task} | " + " | ".join(row.get(m, "") for m in methods) + " |")
