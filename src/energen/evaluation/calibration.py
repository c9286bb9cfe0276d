"""Choosing a run's default sampler budget from held-out data.

For EqM the step budget *is* the sample quality on thick data: gradient descent on the learned landscape
first carries noise to the data (quality improves) and then keeps descending into the landscape's minima
(samples collapse onto them). What matters is the total "time" :math:`\\eta K` (the product of step size and
step count), not :math:`\\eta` or :math:`K` alone, as long as :math:`\\eta` is small. After training we
therefore score samples against held-out data over a grid of :math:`\\eta K` and of the initial temperature
:math:`T_0` of annealed Langevin noise (which counteracts the collapse), and store the best pair as the
run's default (``sampler.json``), with the whole grid. Keys of the grid read ``"etaK@T0"``.

The score is the exact Wasserstein-1 distance (optimal assignment of 500 points) in normalised
coordinates, which applies to any data. Not sliced W1, which compares 1-D projections only: on the
checkerboard it preferred strong annealed noise that smears samples across the empty squares (0.042 vs
0.056 without noise), while exact W1 scored both alike (0.133 vs 0.131) and the plots show the smear.
Flow matching needs no calibration: its horizon is t = 1; nor do DRL/CDRL: they sample through their levels.

A run whose calibration was killed has no ``sampler.json``; ``energen calibrate RUN_DIR`` (:func:`recalibrate`)
runs it again, and until then sampling with the run's default warns (:attr:`energen.run.Run.uncalibrated`).
"""

from __future__ import annotations

from pathlib import Path

from ..data.datasets import load_dataset
from ..data.info import Dataset
from ..errors import CheckpointError, ConfigError
from ..evaluation.metrics import w1_exact
from ..methods import METHODS, saved_config
from ..run import Run
from ..samplers.gradient_descent import GDSettings
from ..samplers.settings import SamplerSettings
from ..utils import atomic_write_json

HORIZONS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1.0)


TEMPERATURES = (0.5, 1.0, 1.5, 2.0, 3.0)  # initial Langevin temperature, annealed linearly to 0


REFINE = (0.6, 0.8, 1.2)  # budgets tried around the noise-free best once a temperature is chosen


DEFAULT_STEPS = 100


W1_POINTS = 500  # the optimal assignment costs O(n^3): ~0.5 s at 500 points, ~15 s at 1,500


CURVE_STEP_SIZE = 0.005  # quality depends on eta*K alone for eta <= 0.02 (docs/results/eqm.md), so read it cheaply


def calibrate(run_dir: str | Path, dataset: Dataset, *, n: int = 1000, seed: int = 10_000_000,
              device: str = "cpu") -> SamplerSettings:  # fmt: skip
    """Choose (eta*K, T0) on held-out data by coordinate search; write it to ``sampler.json``.

    1. the noise-free curve over ``HORIZONS``, read off one trajectory;
    2. each temperature at the best noise-free budget;
    3. the budget around it (``REFINE``) at the best temperature.
    Every tried pair and its score is stored in ``sampler.json`` under ``extra.calibration.grid``.
    """
    run = Run(run_dir, device=device)
    if not run.method.calibrates:  # the budget is fixed by the method (fm: t = 1; drl/cdrl: the levels)
        settings = run.method.default_sampler(run.cfg, run.info)
        atomic_write_json(run.dir / "sampler.json", settings.to_json())
        return settings
    ref, _ = dataset.reference(max(n, 5000))
    ref_n = run.info.normalize(ref)
    grid: dict[str, float] = {}

    def score(h: float, temp: float) -> float:
        key = f"{h:.4g}@{temp:g}"
        if key not in grid:
            s = GDSettings(steps=DEFAULT_STEPS, step_size=h / DEFAULT_STEPS, noise=temp)
            x = run.info.normalize(run.sample(n, seed=seed, settings=s)[0])
            grid[key] = w1_exact(x, ref_n, max_points=W1_POINTS)
        return grid[key]

    record = [round(h / CURVE_STEP_SIZE) for h in HORIZONS]
    curve = GDSettings(steps=max(record), step_size=CURVE_STEP_SIZE)
    _, out = run.sample(n, seed=seed, settings=curve, record=record)
    for h, k in zip(HORIZONS, record, strict=True):
        grid[f"{h:.4g}@0"] = w1_exact(run.info.normalize(out.snapshots[k]), ref_n, max_points=W1_POINTS)
    h0 = min(HORIZONS, key=lambda h: grid[f"{h:.4g}@0"])
    temp = min((0.0, *TEMPERATURES), key=lambda t: grid[f"{h0:.4g}@0"] if t == 0 else score(h0, t))
    if temp > 0:
        for r in REFINE:
            score(h0 * r, temp)
    best = min(grid, key=grid.get)
    h, temp = (float(v) for v in best.split("@"))
    settings = GDSettings(steps=DEFAULT_STEPS, step_size=h / DEFAULT_STEPS, noise=temp,
                          extra={"calibration": {"metric": "w1_exact_normalised", "n": n, "grid": grid,
                                                 "best": best}})  # fmt: skip
    atomic_write_json(run.dir / "sampler.json", settings.to_json())
    return settings


def recalibrate(run_dir: str | Path, *, n: int | None = None, device: str = "cpu") -> SamplerSettings:
    """Run the calibration of a trained run again (``energen calibrate``): after a kill during the calibration
    that training ends with, or on a run trained with ``--no-calibrate``. The held-out data are loaded from
    the run's config as training loads them; ``n`` defaults to the run's ``calibrate_samples``, and the same
    ``n`` gives the same choice as training made. ``sampler.json`` is replaced atomically, under the run's lock
    (refused while a trainer holds it). Refused (one line) for a method with a fixed budget or a run without
    ``model.safetensors``."""
    from ..training.lock import run_lock

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist")
    cfg = saved_config(run_dir)
    if not METHODS.get(cfg.method).calibrates:
        raise ConfigError(f"{cfg.method} runs have no budget to calibrate: their sampler is fixed by the method")
    if not (run_dir / "model.safetensors").is_file():
        raise CheckpointError(f"{run_dir} has no model.safetensors: train it first")
    n = cfg.calibrate_samples if n is None else n
    if not n >= 100:
        raise ConfigError(f"--samples must be >= 100, got {n}")
    dataset = load_dataset(cfg.data, cfg.image_size)
    with run_lock(run_dir, advice="calibrate it once that process (a trainer?) has ended"):
        return calibrate(run_dir, dataset, n=n, device=device)
