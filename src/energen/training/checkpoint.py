"""Run directories and checkpoints: safetensors for tensors, JSON for everything else, never pickle.

A run directory holds::

    config.json           the resolved TrainConfig
    data.json             DataInfo: shape, layout and normalisation of the data (sampling needs no data)
    model.safetensors     export: EMA weights only (what ``sample``/``plot`` load)
    resume.json           resume state: step, optimiser hyper-parameters, name of the tensor file
    resume-<step>.safetensors   resume tensors: model, EMA, optimiser moments, RNG states
    sampler.json          default sampler settings chosen from held-out data after training
    log.csv               one row per logged step

Every file is written to a temporary name and renamed into place. ``resume.json`` is written last and
names its tensor file, so a crash at any point leaves the previous resume state intact.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..utils import atomic_write_json, atomic_write_path

FORMAT_VERSION = 1


def _streamable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors as ``safetensors.torch.save_file`` accepts them, copying as little as possible.

    Non-contiguous tensors are made contiguous; of tensors whose bytes overlap (views of one storage, the
    same tensor under two names) the first keeps its storage and the others are cloned. Everything else is
    written straight from its own memory.
    """
    out = {k: v.detach() for k, v in tensors.items()}
    out = {k: v if v.is_contiguous() else v.contiguous() for k, v in out.items()}
    by_storage: dict[tuple, list[str]] = defaultdict(list)
    for k, v in out.items():
        if v.device.type == "meta":
            continue
        storage = v.untyped_storage()
        if storage.data_ptr() != 0 and storage.nbytes() != 0:
            by_storage[(v.device, storage.data_ptr())].append(k)
    for names in by_storage.values():
        if len(names) < 2:
            continue
        spans = sorted((t.data_ptr(), t.data_ptr() + t.nbytes, k) for k, t in ((k, out[k]) for k in names))
        stop = 0
        for start, end, k in spans:
            if start < stop:
                out[k] = out[k].clone()
            else:
                stop = max(stop, end)
    return out


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to a safetensors file atomically, streaming them to disk without a copy in memory.

    The file is written to a temporary name in the same directory, fsynced and renamed over ``path`` (see
    :func:`energen.utils.atomic_write_path`); it gets the permissions the umask gives a new file.
    """
    tensors = _streamable(tensors)
    with atomic_write_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; anything else (pickle, truncated, corrupt) is a CheckpointError."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint file is missing")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{path}: not a valid safetensors file (corrupt, truncated or pickled?): {e}") from None


def read_json(path: Path) -> dict:
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        d = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON (corrupt or truncated?): {e}") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return d


def _prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in sd.items()}


def _strip(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors and a JSON-able remainder."""
    tensors, state = {}, {}
    for pid, st in sd["state"].items():
        state[str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                state[str(pid)][k] = v
    return tensors, {"param_groups": sd["param_groups"], "state": state}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {int(pid): dict(st) for pid, st in meta["state"].items()}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


@dataclass
class ResumeState:
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict
    rng: dict[str, torch.Tensor]
    extra: dict
    objective: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. a replay buffer


def save_resume(run_dir: Path, state: ResumeState) -> None:
    opt_tensors, opt_meta = flatten_optimizer(state.optimizer)
    tensors = (_prefixed("model", state.model) | _prefixed("ema", state.ema) | opt_tensors
               | _prefixed("rng", state.rng) | _prefixed("objective", state.objective))  # fmt: skip
    name = f"resume-{state.step:09d}.safetensors"
    save_tensors(run_dir / name, tensors, {"format": "energen-resume", "step": str(state.step)})
    atomic_write_json(
        run_dir / "resume.json",
        {"version": FORMAT_VERSION, "step": state.step, "tensors": name, "optimizer": opt_meta, "extra": state.extra},
    )
    for old in run_dir.glob("resume-*.safetensors"):
        if old.name != name:
            old.unlink()


def load_resume(run_dir: Path) -> ResumeState:
    meta = read_json(run_dir / "resume.json")
    try:
        step, name, opt_meta, extra = meta["step"], meta["tensors"], meta["optimizer"], meta.get("extra", {})
    except KeyError as e:
        raise CheckpointError(f"{run_dir / 'resume.json'}: missing key {e}") from None
    if os.sep in name or name.startswith("."):
        raise CheckpointError(f"{run_dir / 'resume.json'}: bad tensor file name {name!r}")
    tensors = load_tensors(run_dir / name)
    return ResumeState(
        step=int(step), model=_strip("model", tensors), ema=_strip("ema", tensors),
        optimizer=unflatten_optimizer(tensors, opt_meta), rng=_strip("rng", tensors), extra=extra,
        objective=_strip("objective", tensors),
    )  # fmt: skip


def save_export(run_dir: Path, ema_state: dict[str, torch.Tensor], step: int, keep: bool = False) -> None:
    """Write the export (EMA weights) as ``model.safetensors``; with ``keep`` also as
    ``exports/model-STEP.safetensors``, which later checkpoints leave in place."""
    meta = {"format": "energen-model", "step": str(step)}
    save_tensors(run_dir / "model.safetensors", ema_state, meta)
    if keep:
        (run_dir / "exports").mkdir(exist_ok=True)
        save_tensors(run_dir / "exports" / f"model-{step:09d}.safetensors", ema_state, meta)


def load_export(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_tensors(run_dir / "model.safetensors")
