"""Contrastive divergence on 2-D toys: sliced W1 against chain length at sampling time, from noise by the run's
default sampler (SMC for runs trained as a density, the vector defaults), from noise by Langevin chains, and
from the replay buffer by Langevin chains (the blog's "adaptive computation time": longer chains at test time
than in training).

Sliced W1 of 5,000 samples against 10,000 fresh points, in data standard deviations; floor: two data sets.
exp(-E): 5,000 draws from the learned density itself, discretised on a grid (no chain): how good the
density is, apart from how well short chains sample it. "regions": the least and the most mass exp(-E) puts
in one of 8 k-means regions of the data, as a multiple of the data's (a mode the density plot does not show is
near 0). "off": the share of samples off the data's support (farther from the nearest data point than 99% of
fresh data points are; 0.01 for the data): mass in the gaps between modes, which the other figures hardly see.
Training options after ``--`` go to every run (for example ``-- --energy-reg 0.1``); runs are named by them.

    python benchmarks/cd.py --out bench-runs                  # ~20 minutes of training per toy, 1 CPU thread
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import density_samples, off_support, reference, region_mass, sw1, trained

from energen.config import TrainConfig
from energen.errors import ConfigError

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--data", nargs="+", default=["checkerboard", "8gaussians", "2spirals"])
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--n", type=int, default=5000)
p.add_argument("--lengths", type=int, nargs="+", default=[20, 50, 200, 1000])
p.add_argument("train_args", nargs="*", help="energen train options for every run (after --)")
a = p.parse_args()
root = Path(a.out)
# the train options given, parsed and checked as energen train's flags (every run trains cd)
try:
    extra = TrainConfig.parse_flags(a.train_args)
except ConfigError as e:
    p.error(f"training options: {e}")
extra.pop("method", None)
suffix = "".join(f"-{k}{v}" for k, v in sorted(extra.items()))

print("| data | start | " + " | ".join(f"K = {k}" for k in a.lengths) + f" | off at {a.lengths[-1]} | exp(-E) | off "
      "| regions | floor |")  # fmt: skip
print("|---|---|" + "---|" * len(a.lengths) + "---|---|---|---|---|")
for data in a.data:
    ds, ref = reference(data)
    run, _ = trained(root, f"{data}-cd{suffix}", method="cd", data=data, steps=a.steps, **extra)
    fresh = ds.reference(a.n, seed=777)[0]
    floor = sw1(run, fresh, ref)
    xd = density_samples(run, a.n, seed=1)
    density, regions = sw1(run, xd, ref), "{:.2f}-{:.2f}".format(*region_mass(xd, ref))
    density_off = off_support(run, xd, ref, fresh)
    default = run.default_sampler
    rows = [(f"noise, {default.sampler}", default, "noise")]
    if default.sampler != "langevin":
        rows.append(("noise, langevin", default.as_chain(), "noise"))
    rows.append(("buffer, langevin", default.as_chain(), "buffer"))
    for i, (what, settings, start) in enumerate(rows):
        cells = []
        for k in a.lengths:
            x, _ = run.sample(a.n, seed=1, settings=settings.with_options(steps=k), start=start)
            cells.append(f"{sw1(run, x, ref):.4f}")
        cells.append(f"{off_support(run, x, ref, fresh):.3f}")
        last = f"{density:.4f} | {density_off:.3f} | {regions} | {floor:.4f}" if i == 0 else " | | |"
        print(f"| {data} | {what} | " + " | ".join(cells) + f" | {last} |", flush=True)
