"""The training loop: composes a data set, a method's model and objective, AdamW, EMA and checkpoints.

Progress is counted in optimiser steps (the CLI's ``--steps``) and reported in samples seen. The loop is
deterministic on CPU: the data order is a function of the step, and all noise comes from one generator
whose state is part of the resume state, so an interrupted and resumed run is bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import TrainConfig
from ..data.datasets import load_dataset
from ..data.info import DataInfo, Dataset
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..interpolants import WEIGHTINGS
from ..methods import METHODS, saved_config
from ..networks import MODELS
from ..training.checkpoint import ResumeState, load_resume, read_json, save_export, save_resume
from ..training.ema import EMA
from ..utils import atomic_write_json
from . import distributed as dist
from .lock import LOCK_NAME, run_lock
from .run_dir import RESUMABLE_FIELDS, check_restart, prepare_run_dir, remove_temporary_files, rewind_log


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    final_loss: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{dist.local_rank()}" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but CUDA is not available")
    return torch.device(f"cuda:{dist.local_rank()}" if name == "cuda" else "cpu")


def check_names(cfg: TrainConfig) -> None:
    """Raise ConfigError (one line, the valid names listed) on a method, model or c(gamma) schedule name that is
    not registered (flags are checked by ``choices=``; names may come from a config file or the Python API)."""
    METHODS.get(cfg.method)
    if cfg.model != "auto":
        MODELS.get(cfg.model)
    MODELS.get(cfg.init_model)
    WEIGHTINGS.get(cfg.c_schedule)


def resolve_config(cfg: TrainConfig, info: DataInfo) -> TrainConfig:
    """Fill the ``auto`` fields from the data and check the combination."""
    check_names(cfg)
    if cfg.model == "auto":
        cfg = replace(cfg, model=METHODS.get(cfg.method).default_model(info.shape))
    cfg = METHODS.get(cfg.method).resolve(cfg, info.shape)
    if cfg.conditional and info.num_classes == 0:
        raise ConfigError(f"--conditional needs labelled data; {info.name!r} has no labels")
    if cfg.hflip and info.kind != "image":
        raise ConfigError(f"--hflip mirrors images; {info.name!r} holds vectors")
    return cfg.validate()


def _warmup(cfg: TrainConfig, samples: int) -> float:
    """The learning-rate factor after ``samples``: linear warm-up, then 1."""
    return 1.0 if cfg.warmup_samples == 0 else min(1.0, samples / cfg.warmup_samples)


def _check_resume_config(saved: TrainConfig, overrides: dict) -> None:
    for k, v in overrides.items():
        if k not in RESUMABLE_FIELDS and getattr(saved, k) != v:
            raise ConfigError(f"--{k.replace('_', '-')} {v!r} differs from the run's {getattr(saved, k)!r}; "
                              "a resumed run keeps its configuration")  # fmt: skip


class _Loggers:
    def __init__(self, run_dir: Path, cfg: TrainConfig, enabled: bool):
        self.enabled = enabled
        self.csv_path = run_dir / "log.csv"
        self.tb = self.wandb = None
        if not enabled:
            return
        self.f = open(self.csv_path, "a+", newline="")
        self.f.seek(0)
        header = next(csv.reader(self.f), None)
        self.w = csv.DictWriter(self.f, fieldnames=header) if header else None  # no header: a new or empty log
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                msg = "--tensorboard needs the tensorboard package: pip install 'energen[tensorboard]'"
                raise ConfigError(msg) from None
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if cfg.wandb:
            try:
                import wandb
            except ImportError:
                raise ConfigError("--wandb needs the wandb package: pip install 'energen[wandb]'") from None
            self.wandb = wandb.init(config=cfg.to_json(), dir=str(run_dir), resume="allow")

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        if self.w is None:  # a new log: its columns are the first row's (the method's statistics included)
            self.w = csv.DictWriter(self.f, fieldnames=list(row))
            self.w.writeheader()
        self.w.writerow(row)
        self.f.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "samples"):
                    self.tb.add_scalar(k, v, row["samples"])
        if self.wandb is not None:
            self.wandb.log(row)

    def close(self) -> None:
        if self.enabled:
            self.f.close()
            if self.tb is not None:
                self.tb.close()
            if self.wandb is not None:
                self.wandb.finish()


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, overrides: dict | None = None,
          progress: bool = True, dataset: Dataset | None = None) -> TrainResult:  # fmt: skip
    """Train ``cfg`` into ``run_dir``.

    Args:
        cfg: the configuration (ignored when resuming, except the fields in ``overrides``).
        resume: continue the run in ``run_dir`` to ``overrides['steps']`` (or its saved total).
        overrides: explicitly requested values; when resuming, fields other than bookkeeping must match
            the saved configuration.
        dataset: an already loaded data set (otherwise loaded from ``cfg.data``).

    The run directory is locked for the whole call (see :mod:`energen.training.lock`; under torchrun by rank 0):
    a second trainer on it refuses. A directory holding a run stopped before its first checkpoint is started
    over when the configuration is the same (see :func:`prepare_run_dir`).
    """
    run_dir = Path(run_dir)
    if (resume or run_dir.exists()) and not run_dir.is_dir():
        prepare_run_dir(run_dir, resume)  # refuses before the lock would create anything
    main, created = int(os.environ.get("RANK", "0")) == 0, not run_dir.exists()
    with run_lock(run_dir) if main else contextlib.nullcontext():
        try:
            return _train(cfg, run_dir, resume=resume, overrides=overrides or {}, progress=progress, dataset=dataset)
        except BaseException:
            if main and created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:  # a refusal leaves nothing
                (run_dir / LOCK_NAME).unlink()
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            raise


def _train(cfg: TrainConfig, run_dir: Path, *, resume: bool, overrides: dict, progress: bool,
           dataset: Dataset | None) -> TrainResult:  # fmt: skip
    restart = prepare_run_dir(run_dir, resume)  # under the lock: no other trainer can change the directory now
    if resume:
        saved = saved_config(run_dir)
        _check_resume_config(saved, overrides)
        cfg = replace(saved, **{k: v for k, v in overrides.items() if k in RESUMABLE_FIELDS})
    device = resolve_device(cfg.device)
    dist.init(device)
    dist.barrier()  # every rank has checked the run directory before rank 0 writes into it
    rank, world = dist.rank(), dist.world_size()
    if cfg.batch_size % world:
        raise ConfigError(f"batch-size {cfg.batch_size} is not divisible by the {world} processes")
    dataset = dataset or load_dataset(cfg.data, cfg.image_size)
    info = dataset.info
    if resume and DataInfo.from_json(read_json(run_dir / "data.json")) != info:
        raise ConfigError(f"{run_dir}: data {cfg.data!r} differs from the data the run was trained on")
    cfg = resolve_config(cfg, info)
    if restart:
        check_restart(run_dir, cfg, info)
    method = METHODS.get(cfg.method)
    num_classes = info.num_classes if cfg.conditional else 0

    torch.manual_seed(cfg.seed)
    model = method.build_model(cfg, info.shape, num_classes).to(device)
    if cfg.grad_checkpointing:
        backbones = [m for m in model.modules() if hasattr(m, "grad_checkpointing")]
        if not backbones:
            raise ConfigError(f"--grad-checkpointing needs a transformer backbone (EqM-*), not {cfg.model!r}")
        for m in backbones:
            m.grad_checkpointing = True
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    objective = method.objective(cfg, num_classes, info)
    ema = EMA(model, halflife_samples=cfg.ema_halflife_samples, rampup=cfg.ema_rampup)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    step, st = 0, None
    runaway = RunawayLoss()
    if resume:
        st = load_resume(run_dir)
        with _resume_errors(run_dir):
            model.load_state_dict(st.model)
            ema.load_state_dict(st.ema)
            if hasattr(objective, "load_state_dict"):
                objective.load_state_dict(_rank_state(st.objective, rank))
        gen_state = st.rng.get(f"generator.{rank}")
        if gen_state is None:
            raise CheckpointError(f"{run_dir}: resume state has no RNG state for rank {rank} (world size changed?)")
        gen.set_state(gen_state)
        step = st.step
        runaway.first = st.extra.get("first_loss")
        if step >= cfg.steps:
            raise ConfigError(f"{run_dir} is already at step {step}; pass a larger --steps to continue")
    dist.broadcast_module(model)
    parallel = dist.ParallelObjective(model, objective, cfg.parallel, device)  # under fsdp: shards the model in place
    parallel.shard_like(ema.model)
    groups = method.param_groups(model, cfg)
    base_lrs, names = [g["lr"] for g in groups], [g.pop("name") for g in groups]  # kept out of the optimiser state
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
                            fused=device.type == "cuda" or None)  # fmt: skip
    if st is not None:
        with _resume_errors(run_dir):
            dist.load_optimizer_state(model, opt, st.optimizer)
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(run_dir)
        if restart:
            (run_dir / "log.csv").unlink(missing_ok=True)
        atomic_write_json(run_dir / "config.json", cfg.to_json())
        atomic_write_json(run_dir / "data.json", info.to_json())
        if resume:
            rewind_log(run_dir / "log.csv", step)
    if cfg.compile:
        model.compile()  # in place: the state dict keeps its names
    use_bf16 = cfg.bf16 and device.type == "cuda"
    loggers = _Loggers(run_dir, cfg, dist.is_main())
    model.train()
    t0, loss_val = time.time(), math.nan
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and dist.is_main()), desc="train", unit="step")
    try:
        while step < cfg.steps:
            samples = step * cfg.batch_size
            for group, base_lr in zip(opt.param_groups, base_lrs, strict=True):
                group["lr"] = base_lr * _warmup(cfg, samples + cfg.batch_size)
            x, y = dataset.batch(step, cfg.batch_size, gen, rank=rank, world=world, hflip=cfg.hflip)
            x = x.to(device)
            y = None if (y is None or not cfg.conditional) else y.to(device)
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
            with autocast:
                out = parallel(x, y, gen)  # the objective on the rank's slice of the batch
            loss = out.per_sample.mean()
            if not dist.all_ok(bool(torch.isfinite(loss))):
                raise TrainingDiverged(f"training diverged: the loss became {loss.item()} at step {step + 1}; "
                                       "try a lower --lr or a smaller step budget")  # fmt: skip
            if not dist.all_ok(out.problem is None):
                raise TrainingDiverged(f"training diverged at step {step + 1}: {out.problem or 'on another rank'}")
            gnorms = optimizer_step(opt, names, loss, cfg.grad_clip)
            step += 1
            samples = step * cfg.batch_size
            ema.update(model, batch=cfg.batch_size, samples_seen=samples)
            loss_val = loss.item()
            runaway.add(loss_val)
            if step % cfg.log_every == 0 or step == cfg.steps:
                loggers.log({"step": step, "samples": samples, "loss": f"{loss_val:.6g}",
                             "lr": f"{opt.param_groups[0]['lr']:.4g}",
                             "ema_beta": f"{ema.beta(cfg.batch_size, samples):.6f}",
                             "seconds": f"{time.time() - t0:.2f}"}
                            | {k: f"{float(v):.4g}" for k, v in gnorms.items()}
                            | {k: f"{v:.6g}" for k, v in out.stats.items()})  # fmt: skip
                bar.set_postfix(loss=f"{loss_val:.4f}")
                runaway.check(step, cfg.lr)  # before the checkpoint: a run-away model is not saved
            bar.update(1)
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                _checkpoint(run_dir, step, model, ema, opt, gen, world, objective, keep_export=cfg.keep_exports,
                            extra={"first_loss": runaway.first})  # fmt: skip
    finally:
        bar.close()
        loggers.close()
    if cfg.calibrate and dist.is_main():
        from ..evaluation.calibration import calibrate

        calibrate(run_dir, dataset, n=cfg.calibrate_samples)
    dist.barrier()
    return TrainResult(run_dir=run_dir, step=step, final_loss=loss_val)


class RunawayLoss:
    """Stops a loss that runs away while staying finite (a too large ``--lr``), for every method.

    At each log row, the mean of |loss| over the steps since the previous row is compared with the run's first
    loss (that of the initial model, kept in the resume state): when it exceeds ``FACTOR * max(|first loss|, 1)``
    (100x) on any process, training stops with :class:`TrainingDiverged` before the step is checkpointed. The
    absolute value and the floor of 1 cover the contrastive losses (cd, drl), which are differences of energies
    near 0 of either sign. Healthy runs stay far below: EqM's loss falls from its first value, flow matching's
    and cdrl's stay near 1, cd's and drl's within +-0.3 on the built-in toys and digits.
    """

    FACTOR = 100.0

    def __init__(self) -> None:
        self.first: float | None = None
        self.total, self.n = 0.0, 0

    def add(self, loss: float) -> None:
        if self.first is None:
            self.first = abs(loss)
        self.total, self.n = self.total + abs(loss), self.n + 1

    def check(self, step: int, lr: float) -> None:
        mean, n = self.total / max(self.n, 1), self.n
        self.total, self.n = 0.0, 0
        limit = self.FACTOR * max(self.first or 0.0, 1.0)
        ok = mean <= limit
        if not dist.all_ok(ok):
            where = f"the mean |loss| over the last {n} steps is {mean:.4g}" if not ok else "on another process"
            raise TrainingDiverged(f"training diverged at step {step}: {where}, above {limit:.4g} "
                                   f"({self.FACTOR:g}x max(first loss {self.first:.4g}, 1)); start again with a lower "
                                   f"--lr (now {lr:g})")  # fmt: skip


def optimizer_step(opt: torch.optim.Optimizer, names: list[str], loss: torch.Tensor,
                   grad_clip: float) -> dict[str, torch.Tensor]:  # fmt: skip
    """Back-propagate ``loss`` (under data parallelism the gradients arrive averaged over the ranks), clip the
    gradient norm of each parameter group to ``grad_clip`` (0: off) and step; returns each group's norm (a
    0-d tensor, read only when logged: reading it waits for the device)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorms = {f"grad_norm_{name}": torch.nn.utils.clip_grad_norm_(g["params"], grad_clip or math.inf)
              for name, g in zip(names, opt.param_groups, strict=True)}  # fmt: skip
    opt.step()
    return {k: dist.full_tensor(v) for k, v in gnorms.items()}  # FSDP's norms: DTensors, replicated


@contextlib.contextmanager
def _resume_errors(run_dir: Path):
    try:
        yield
    except (RuntimeError, KeyError, ValueError) as e:
        msg = f"{run_dir}: resume state does not match the model: {str(e).splitlines()[0]}"
        raise CheckpointError(msg) from None


def _rank_state(objective_state: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    """One rank's part of the saved objective state: rank 0's under its own names (what sampling reads), rank r's
    under ``rank<r>.``; a run saved before the ranks' states were kept gives every rank rank 0's."""
    plain = {k: v for k, v in objective_state.items() if not re.match(r"rank\d+\.", k)}
    prefix = f"rank{rank}."
    own = {k[len(prefix) :]: v for k, v in objective_state.items() if k.startswith(prefix)}
    return own if rank > 0 and own else plain


def _checkpoint(run_dir: Path, step: int, model, ema: EMA, opt, gen: torch.Generator, world: int,
                objective, keep_export: bool = False, extra: dict | None = None) -> None:  # fmt: skip
    """Write the export (EMA) and the resume state. The RNG states and the objective's states (replay buffers) of
    all ranks are gathered to rank 0; under FSDP every rank takes part in gathering the full model, EMA and
    optimiser states onto rank 0."""
    states = [gen.get_state()]
    if world > 1:
        states = [None] * world
        torch.distributed.all_gather_object(states, gen.get_state())
    objective_states = dist.gather_to_main(getattr(objective, "state_dict", dict)())
    model_sd, ema_sd = dist.full_model_state(model), dist.full_model_state(ema.model)
    opt_sd = dist.full_optimizer_state(model, opt)
    if dist.is_main():
        rng = {f"generator.{r}": s for r, s in enumerate(states)}
        objective_sd = objective_states[0] | {f"rank{r}.{k}": v for r, sd in enumerate(objective_states) if r > 0
                                              for k, v in sd.items()}  # fmt: skip
        save_resume(run_dir, ResumeState(step=step, model=model_sd, ema=ema_sd, optimizer=opt_sd, rng=rng,
                                         extra=extra or {}, objective=objective_sd))  # fmt: skip
        save_export(run_dir, ema_sd, step, keep=keep_export)
    dist.barrier()
