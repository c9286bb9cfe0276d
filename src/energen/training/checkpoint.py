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
names its tensor file, so a crash at any point leaves the previous resume state intact. Every tensor file
carries a SHA-256 of its tensors in its metadata (``sha256``), checked when it is loaded; its header is
written in a fixed order, so saving the same tensors twice gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..utils import atomic_write_json, atomic_write_path, is_finite_number, is_integer

FORMAT_VERSION = 1
CHECKSUM_KEY = "sha256"  # safetensors metadata: SHA-256 of the tensors (see tensor_checksum)


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


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the tensors in key order: each one's name, dtype, shape and bytes.

    Hashes one tensor at a time from its own memory (a CUDA tensor is copied to the CPU alone), so it needs no
    copy of the whole state.
    """
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach()
        h.update(f"{k}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        if t.numel() and t.device.type != "meta":
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def _sort_metadata(path: Path) -> None:
    """Rewrite the header of the safetensors file ``path`` in place with its metadata in key order.

    safetensors writes the metadata in a random order, so two saves of the same tensors differ; the sorted
    header has the same length (the same keys and values), so the tensor bytes stay where they are.
    """
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        if "__metadata__" not in header:
            return
        header = {"__metadata__": dict(sorted(header["__metadata__"].items()))} | {
            k: v for k, v in header.items() if k != "__metadata__"
        }
        new = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(new) > n:  # cannot happen for the same keys and values; keep safetensors' own header then
            return
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to a safetensors file atomically, streaming them to disk without a copy in memory.

    The file is written to a temporary name in the same directory, fsynced and renamed over ``path`` (see
    :func:`energen.utils.atomic_write_path`); it gets the permissions the umask gives a new file. Its metadata
    holds ``metadata`` and the checksum :func:`tensor_checksum` under ``sha256``, in key order, so the same
    tensors and metadata always give the same bytes.
    """
    tensors = _streamable(tensors)
    metadata = dict(sorted(((metadata or {}) | {CHECKSUM_KEY: tensor_checksum(tensors)}).items()))
    with atomic_write_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(tmp)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; anything else (pickle, truncated, corrupt) is a CheckpointError.

    A file with a checksum (every file :func:`save_tensors` writes) must match it; files written before the
    checksum existed load unchecked.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint file is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a valid safetensors file (corrupt, truncated or pickled?): {msg}") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and tensor_checksum(tensors) != expected:
        raise CheckpointError(f"{path} is corrupt: checksum mismatch (the file changed after it was written)")
    return tensors


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


def _check_resume_json(path: Path, meta: dict) -> None:
    """Refuse a ``resume.json`` whose fields have the wrong type or range (one line naming the field)."""
    for key in ("step", "tensors", "optimizer"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing key {key!r}")
    version, step, name, opt = meta.get("version", FORMAT_VERSION), meta["step"], meta["tensors"], meta["optimizer"]
    if not (is_integer(version) and 1 <= version <= FORMAT_VERSION):
        raise CheckpointError(f"{path}: version must be an integer from 1 to {FORMAT_VERSION}, got {version!r}")
    if not (is_integer(step) and step >= 0):
        raise CheckpointError(f"{path}: step must be an integer >= 0, got {step!r}")
    plain_name = isinstance(name, str) and "/" not in name and os.sep not in name and not name.startswith(".")
    if not (plain_name and name.endswith(".safetensors")):
        raise CheckpointError(f"{path}: tensors must name a .safetensors file in the run directory, got {name!r}")
    groups, state = (opt.get("param_groups"), opt.get("state")) if isinstance(opt, dict) else (None, None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise CheckpointError(f"{path}: optimizer.param_groups must be a list of objects")
    if not isinstance(state, dict) or not all(isinstance(v, dict) and k.isdigit() for k, v in state.items()):
        raise CheckpointError(f"{path}: optimizer.state must map parameter numbers to objects")
    for i, g in enumerate(groups):
        params = g.get("params", [])
        if not (isinstance(params, list) and all(is_integer(p) and p >= 0 for p in params)):
            raise CheckpointError(f"{path}: optimizer.param_groups[{i}].params must be a list of parameter numbers")
        for k in ("lr", "weight_decay"):
            v = g.get(k)
            if v is not None and not (is_finite_number(v) and v >= 0):
                raise CheckpointError(f"{path}: optimizer.param_groups[{i}].{k} must be a number >= 0, got {v!r}")
    if not isinstance(meta.get("extra", {}), dict):
        raise CheckpointError(f"{path}: extra must be an object, got {meta['extra']!r}")


def load_resume(run_dir: Path) -> ResumeState:
    path = run_dir / "resume.json"
    meta = read_json(path)
    _check_resume_json(path, meta)
    step, name, opt_meta, extra = meta["step"], meta["tensors"], meta["optimizer"], meta.get("extra", {})
    tensors = load_tensors(run_dir / name)
    try:
        optimizer = unflatten_optimizer(tensors, opt_meta)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: optimizer does not match {name}: {e}") from None
    return ResumeState(
        step=step, model=_strip("model", tensors), ema=_strip("ema", tensors), optimizer=optimizer,
        rng=_strip("rng", tensors), extra=extra, objective=_strip("objective", tensors),
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
