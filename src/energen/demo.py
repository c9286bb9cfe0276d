"""``energen demo``: the README's first command. Trains EqM on the checkerboard, samples with the
calibrated default sampler, evaluates against fresh data and draws the landscape (1-2 minutes on 2 CPU
cores)."""

from __future__ import annotations

import json
from pathlib import Path

from .config import TrainConfig


def _new_dir(out: str | None) -> Path:
    if out is not None:
        return Path(out)
    i = 0
    while True:
        p = Path("energen-demo" if i == 0 else f"energen-demo-{i}")
        if not p.exists():
            return p
        i += 1


def run_demo(out: str | None, *, steps: int = 4000) -> dict:
    import torch

    from .data.datasets import load_dataset
    from .data.samples import write_samples
    from .evaluation.metrics import evaluate
    from .plotting import plot_run
    from .run import Run
    from .training.loop import train

    root = _new_dir(out)
    run_dir = root / "run"
    print(f"[demo] training EqM on checkerboard for {steps} steps into {run_dir}")
    ds = load_dataset("checkerboard")
    train(TrainConfig(method="eqm", data="checkerboard", steps=steps), run_dir, dataset=ds)
    run = Run(run_dir)
    x, o = run.sample(5000, seed=0)
    write_samples(x, run.info, root / "samples.npy")
    ref, _ = ds.reference(10_000)
    metrics = evaluate(x, ref, data_name="checkerboard", scale=torch.tensor(run.info.scale))
    metrics["sampler"] = run.default_sampler.to_json() | {"extra": None}
    plot_run(run, root / "plot.png")
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"[demo] sliced W1 to fresh data: {metrics['sliced_w1']:.4f} (in data standard deviations)")
    print(f"[demo] samples: {root / 'samples.npy'}  plot: {root / 'plot.png'}  metrics: {root / 'metrics.json'}")
    return metrics
