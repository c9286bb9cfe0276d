"""Run under ``torchrun --nproc_per_node=2`` by test_distributed.py; one launch serves all its tests. Rank 0 writes
what it measured to ``<root>/results.json``.

1. One process against two (``equivalence``): for each method and data-parallel kind, a few optimiser steps by the
   2 gloo processes (:class:`energen.training.distributed.ParallelObjective`, the loop's ``optimizer_step``), and on
   rank 0 the same steps by one process on the same global batch with the same noise: each rank's slice drawn from
   that rank's generator and given to its own objective (a replay buffer is per rank), their per-sample losses
   averaged together. The largest differences of weights, EMA weights and AdamW moments are recorded, and
   whether the gathered optimiser state survives a reload into a fresh optimiser. Spectral normalisation is off:
   its power iteration runs once per training forward, so one process running two slices would advance it twice.
2. The training loop (``train``): a small DiT on an image folder (centre-cropped, flipped, class-conditional) under
   ddp and fsdp, each trained straight to 4 steps and in two halves with a resume; contrastive divergence (chains,
   a replay buffer in the resume state) the same way under fsdp; then sampling by 2 processes.
"""

import json
import sys
import time
from pathlib import Path

import torch

from energen import TrainConfig, train
from energen.cli.main import main as cli
from energen.data.datasets import load_dataset
from energen.methods import METHODS
from energen.training import distributed as dist
from energen.training.ema import EMA
from energen.training.loop import optimizer_step, resolve_config

RUNS = [f"{m}:{k}" for m in ("eqm", "eqm-e", "cdrl", "cd") for k in ("ddp", "fsdp")]
STEPS, BATCH, WORLD = 3, 16, 2
EXTRA = {"cdrl": {"langevin_steps": 2},
         "cd": {"langevin_steps": 3, "spectral_norm": False, "icd_kl": 1.0, "buffer_size": 64}}  # fmt: skip


def setup(method: str, dataset):
    cfg = TrainConfig(method=method, data="8gaussians", model="mlp-small", batch_size=BATCH, warmup_samples=0,
                      ema_halflife_samples=64, lr=1e-3, **EXTRA.get(method, {}))  # fmt: skip
    cfg = resolve_config(cfg, dataset.info)
    m = METHODS.get(method)
    torch.manual_seed(0)
    model = m.build_model(cfg, dataset.info.shape, 0)
    return cfg, m, model, EMA(model, halflife_samples=cfg.ema_halflife_samples, rampup=cfg.ema_rampup)


def optimiser(m, model, cfg):
    groups = m.param_groups(model, cfg)
    names = [g.pop("name") for g in groups]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2)), names


def batch(dataset, step: int, gen: torch.Generator, rank: int):
    return dataset.batch(step, BATCH, gen, rank=rank, world=WORLD)[0]


def parallel_run(method: str, kind: str, dataset):
    """STEPS steps by this rank; the full states (on rank 0), and the optimiser state after a reload."""
    cfg, m, model, ema = setup(method, dataset)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + dist.rank())
    step_fn = dist.ParallelObjective(model, m.objective(cfg, 0, dataset.info), kind, torch.device("cpu"))
    step_fn.shard_like(ema.model)
    opt, names = optimiser(m, model, cfg)
    for step in range(STEPS):
        out = step_fn(batch(dataset, step, gen, dist.rank()), None, gen)
        optimizer_step(opt, names, out.per_sample.mean(), cfg.grad_clip)
        ema.update(model, batch=BATCH, samples_seen=(step + 1) * BATCH)
    full = dist.full_model_state(model), dist.full_model_state(ema.model), dist.full_optimizer_state(model, opt)
    saved = [full[2]]
    torch.distributed.broadcast_object_list(saved, src=0)  # every rank reads the resume file
    opt2, _ = optimiser(m, model, cfg)
    dist.load_optimizer_state(model, opt2, saved[0])
    return full, dist.full_optimizer_state(model, opt2)


def reference_run(method: str, dataset):
    """The same steps by one process: both ranks' slices, noise streams and objectives, one mean."""
    cfg, m, model, ema = setup(method, dataset)
    gens = [torch.Generator().manual_seed(cfg.seed * 1000 + r) for r in range(WORLD)]
    objectives = [m.objective(cfg, 0, dataset.info) for _ in range(WORLD)]
    opt, names = optimiser(m, model, cfg)
    for step in range(STEPS):
        outs = [objectives[r](model, batch(dataset, step, gens[r], r), None, gens[r]) for r in range(WORLD)]
        optimizer_step(opt, names, torch.cat([o.per_sample for o in outs]).mean(), cfg.grad_clip)
        ema.update(model, batch=BATCH, samples_seen=(step + 1) * BATCH)
    return model.state_dict(), ema.state_dict(), opt.state_dict()


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def opt_diff(a: dict, b: dict) -> float:
    assert [g["params"] for g in a["param_groups"]] == [g["params"] for g in b["param_groups"]]
    assert a["state"].keys() == b["state"].keys()
    return max(max_diff(a["state"][i], b["state"][i]) for i in a["state"])


def equivalence() -> dict:
    dataset, results = load_dataset("8gaussians"), {}
    for run in RUNS:
        method, kind = run.split(":")
        t0 = time.time()
        (model_sd, ema_sd, opt_sd), reloaded = parallel_run(method, kind, dataset)
        if dist.is_main():
            ref_model, ref_ema, ref_opt = reference_run(method, dataset)
            results[run] = {"model": max_diff(model_sd, ref_model), "ema": max_diff(ema_sd, ref_ema),
                            "optimizer": opt_diff(opt_sd, ref_opt), "reloaded": opt_diff(reloaded, opt_sd),
                            "moved": max_diff(ref_model, setup(method, dataset)[2].state_dict()),
                            "groups": len(ref_opt["param_groups"]), "seconds": time.time() - t0}  # fmt: skip
    return results


def straight_and_halves(cfg: TrainConfig, root: Path) -> None:
    train(cfg, root / "straight", progress=False)
    train(TrainConfig(**{**cfg.to_json(), "steps": cfg.steps // 2}), root / "halves", progress=False)
    train(cfg, root / "halves", resume=True, overrides={"steps": cfg.steps}, progress=False)


def main() -> int:
    folder, root = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    dist.init(torch.device("cpu"))
    t0 = time.time()
    results = {"equivalence": equivalence(), "seconds": {"equivalence": time.time() - t0}}
    images = TrainConfig(method="eqm", data=folder, image_size=16, hflip=True, conditional=True,
                         model="DiT-2x64-h4/2", steps=4, batch_size=4, ckpt_every=2, calibrate=False, lr=1e-3,
                         warmup_samples=0)  # fmt: skip
    for kind in ("ddp", "fsdp"):
        t0 = time.time()
        straight_and_halves(TrainConfig(**{**images.to_json(), "parallel": kind}), root / kind)
        results["seconds"][kind] = time.time() - t0
    t0 = time.time()
    cd = TrainConfig(method="cd", data="8gaussians", model="mlp-small", steps=6, batch_size=32, ckpt_every=3,
                     calibrate=False, langevin_steps=3, buffer_size=50, icd_kl=1.0, parallel="fsdp")  # fmt: skip
    straight_and_halves(cd, root / "cd-fsdp")
    results["seconds"]["cd-fsdp"] = time.time() - t0
    rc = cli(["sample", str(root / "ddp" / "straight"), "--n", "5", "--steps", "2", "--class", "1",
              "--out", str(root / "pngs"), "--npz", str(root / "samples.npz"), "--seed", "3"])  # fmt: skip
    if dist.is_main():
        (root / "results.json").write_text(json.dumps(results, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
