"""Choosing a run's default sampler budget from held-out data.

For EqM the step budget *is* the sample quality on thick data: gradient descent on the learned landscape
first carries noise to the data (quality improves) and then keeps descending into the landscape's minima
(samples collapse onto them). What matters is the total "time" :math:`\\eta K` (the product of step size and
step count), not :math:`\\eta` or :math:`K` alone, as long as :math:`\\eta` is small. After training we
therefore run gradient descent once from held-out noise, score the samples against held-out data at a grid
of :math:`\\eta K`, and store the best as the run's default (``sampler.json``), with the whole curve.

The score is the sliced Wasserstein-1 distance in normalised coordinates, which applies to any data.
Flow matching needs no calibration: its horizon is t = 1.
"""

from __future__ import annotations

from pathlib import Path

from .data import Dataset
from .metrics import sliced_w1
from .sampling import Run, SamplerSettings
from .utils import atomic_write_json

HORIZONS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0)
CALIBRATION_STEP_SIZE = 0.005  # small enough that the result depends on eta*K only (see docs/results.md)
DEFAULT_STEPS = 100


def calibrate(run_dir: str | Path, dataset: Dataset, *, n: int = 2000, seed: int = 10_000_000) -> SamplerSettings:
    """Measure quality against eta*K on held-out data and write the best budget to ``sampler.json``."""
    run = Run(run_dir)
    if run.method.horizon_is_time:
        settings = SamplerSettings(sampler="gd", steps=DEFAULT_STEPS, step_size=1.0 / DEFAULT_STEPS)
        atomic_write_json(run.dir / "sampler.json", settings.to_json())
        return settings
    ref, _ = dataset.reference(max(n, 5000))
    ref_n = run.info.normalize(ref)
    record = [round(h / CALIBRATION_STEP_SIZE) for h in HORIZONS]
    probe = SamplerSettings(sampler="gd", steps=max(record), step_size=CALIBRATION_STEP_SIZE)
    _, out = run.sample(n, seed=seed, settings=probe, record=record)
    curve = {}
    for k, x in sorted(out.snapshots.items()):
        curve[round(k * CALIBRATION_STEP_SIZE, 4)] = sliced_w1(run.info.normalize(x), ref_n)
    best = min(curve, key=curve.get)
    settings = SamplerSettings(sampler="gd", steps=DEFAULT_STEPS, step_size=best / DEFAULT_STEPS,
                               extra={"calibration": {"metric": "sliced_w1_normalised", "eta_k": curve,
                                                      "best_eta_k": best}})  # fmt: skip
    atomic_write_json(run.dir / "sampler.json", settings.to_json())
    return settings
