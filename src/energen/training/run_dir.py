"""The run directory as training sees it: which files a run stopped before its first checkpoint holds, when such a
run may start over, the leftovers of interrupted writes, and the log rewound to a resume point."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from ..config import TrainConfig
from ..data.info import DataInfo
from ..errors import CheckpointError, ConfigError
from ..methods import saved_config
from ..training.checkpoint import read_json
from ..utils import atomic_temp_target
from .lock import LOCK_NAME

# Fields that may change when a run is resumed: they do not alter what is computed.
RESUMABLE_FIELDS = {
    "steps", "ckpt_every", "log_every", "tensorboard", "wandb", "device", "calibrate", "calibrate_samples",
    "compile", "grad_checkpointing", "parallel", "keep_exports",
}  # fmt: skip


# What train writes into a run directory before its first checkpoint (besides temporary files).
PRE_CHECKPOINT_FILES = {"config.json", "data.json", "log.csv", LOCK_NAME}
# Temporary files of train's own atomic writes (crash leftovers, each up to a full resume state) by their target.
_OWN_TEMP_TARGETS = re.compile(r"config\.json|data\.json|resume\.json|resume-\d+\.safetensors|model\.safetensors")
_OWN_EXPORT_TEMP_TARGETS = re.compile(r"model-\d+\.safetensors")


def prepare_run_dir(run_dir: Path, resume: bool) -> bool:
    """Refuse to touch a non-empty run directory unless resuming; refuse to resume what is not a run.

    Returns whether ``run_dir`` holds a run stopped before its first checkpoint (only the files train writes
    before it: config.json, data.json, log.csv, .lock, temporary files): such a run is started over when its
    saved configuration equals the new one (see :func:`check_restart`). The lock file and temporary files
    alone count as empty."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} exists and is not a directory; choose another --out")
    if resume:
        if not (run_dir / "resume.json").is_file():
            raise CheckpointError(f"{run_dir}: nothing to resume (no resume.json); train without --resume")
        return False
    names = {p.name for p in run_dir.iterdir() if atomic_temp_target(p.name) is None} if run_dir.exists() else set()
    if not names - {LOCK_NAME}:
        return False
    if "config.json" in names and names <= PRE_CHECKPOINT_FILES:
        return True
    raise ConfigError(f"{run_dir} exists and is not empty; pass --resume to continue it or choose another --out")


def check_restart(run_dir: Path, cfg: TrainConfig, info: DataInfo) -> None:
    """Refuse (one line, naming the first difference) to start over a run stopped before its first checkpoint
    with another configuration or other data than it was started with; bookkeeping fields may differ."""
    saved = saved_config(run_dir)
    for k in TrainConfig.__dataclass_fields__:
        if k not in RESUMABLE_FIELDS and getattr(saved, k) != getattr(cfg, k):
            raise ConfigError(f"{run_dir} holds a run stopped before its first checkpoint with --{k.replace('_', '-')} "
                              f"{getattr(saved, k)!r}, not {getattr(cfg, k)!r}; train with its options to start it "
                              "over, or choose another --out")  # fmt: skip
    if (run_dir / "data.json").is_file() and DataInfo.from_json(read_json(run_dir / "data.json")) != info:
        raise ConfigError(f"{run_dir} holds a run stopped before its first checkpoint on other data than "
                          f"{cfg.data!r}; choose another --out")  # fmt: skip


def remove_temporary_files(run_dir: Path) -> None:
    """Remove the leftovers of train's own atomic writes that a crash or kill left in ``run_dir`` (and its
    exports/); files of other names and other programs' temporary files are left alone."""
    for folder, targets in ((run_dir, _OWN_TEMP_TARGETS), (run_dir / "exports", _OWN_EXPORT_TEMP_TARGETS)):
        if folder.is_dir():
            for p in folder.iterdir():
                target = atomic_temp_target(p.name)
                if target is not None and targets.fullmatch(target) and p.is_file():
                    p.unlink(missing_ok=True)


def rewind_log(path: Path, step: int) -> None:
    """Drop log rows written after the resume point (they are recomputed), and a row cut short by a kill. A log
    without a header (a kill before the first row) is emptied: the first row writes the header."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames  # read here: once the file is closed, reading it for an empty log would fail
        rows = [r for r in reader if None not in r.values() and None not in r and _int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        if header:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)


def _int(s: str) -> float:
    """A logged step; a mangled one (a row cut short) counts as past any resume point."""
    try:
        return int(s)
    except ValueError:
        return math.inf
