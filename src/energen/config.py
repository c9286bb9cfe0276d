"""Typed configuration, saved as ``config.json`` in every run directory.

Values come, in increasing priority, from the dataclass defaults, a ``--config`` file (JSON or YAML,
unknown keys rejected) and explicit command-line flags. ``"auto"`` fields are filled from the data by
:func:`energen.training.resolve_config` before training and saved resolved.

Every field is declared once, with :func:`option`: its default, help text, group (concern or method family),
valid range and fixed choices. :meth:`TrainConfig.validate`, the ``energen train`` flags
(:func:`add_config_arguments`) and :meth:`TrainConfig.parse_flags` are all derived from these declarations.
Names chosen from a registry (method, model, init_model, c_schedule) are checked by whoever holds the
registries: the CLI (``choices=``) and the training loop (``Registry.get``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Sequence
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

DATA = "data and model"
EQM = "EqM and flow matching (eqm, eqm-e, fm)"
RECOVERY = "recovery likelihood (drl, cdrl)"
CD = "contrastive divergence (cd)"
OPTIM = "optimisation"
BOOKKEEPING = "bookkeeping and hardware"
GROUPS = (DATA, EQM, RECOVERY, CD, OPTIM, BOOKKEEPING)

MAX_LR = 10.0  # the largest --lr / --init-lr TrainConfig.validate accepts
BUFFER_INITS = ("uniform", "normal", "data")  # where fresh cd chains start (energen.losses.replay_buffer)
PARALLEL = ("ddp", "fsdp")  # data parallelism over torchrun processes (energen.training.distributed)

_INTERVAL = re.compile(r"(?P<lo_end>[\[(])(?P<lo>[^,]+), (?P<hi>[^\])]+)(?P<hi_end>[\])])")
_BOUND = re.compile(r"(?P<op>>=|>) (?P<lo>\S+)")


def _bounds(valid: str) -> tuple[float, bool, float, bool]:
    """``">= 1"``, ``"> 0"``, ``"[0, 1)"``, ... as (low, low included, high, high included)."""
    if m := _BOUND.fullmatch(valid):
        return float(m["lo"]), m["op"] == ">=", math.inf, False
    if m := _INTERVAL.fullmatch(valid):
        return float(m["lo"]), m["lo_end"] == "[", float(m["hi"]), m["hi_end"] == "]"
    raise ValueError(f"range {valid!r}: write '>= a', '> a' or an interval such as '[a, b)'")


def within(value: float, valid: str) -> bool:
    """Whether ``value`` lies in the range ``valid`` (see :func:`option`); NaN never does."""
    lo, lo_in, hi, hi_in = _bounds(valid)
    return (lo <= value if lo_in else lo < value) and (value <= hi if hi_in else value < hi)


def range_text(valid: str) -> str:
    """``"must be >= 1"`` or ``"must be in [0, 1)"``."""
    return f"must be {valid}" if valid.startswith(">") else f"must be in {valid}"


def option(default: Any, help: str, *, group: str, valid: str | None = None, choices: Sequence[str] | None = None,
           auto: str | None = None) -> Any:  # fmt: skip
    """A :class:`TrainConfig` field.

    Args:
        default: the value when neither a config file nor a flag gives one.
        help: one line for ``energen train --help``.
        group: the concern or method family the option belongs to (one of :data:`GROUPS`).
        valid: the allowed range of a number: ``">= 1"``, ``"> 0"``, ``"[0, 1)"``, ``"[0, 1]"``, ...
        choices: the allowed values of a string that is not a registry name.
        auto: for defaults filled in from the method and data (``None`` or ``"auto"``): the rule, in short.
    """
    if valid is not None:
        _bounds(valid)  # a malformed range fails at import
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    meta = {"help": help, "group": group, "valid": valid, "choices": None if choices is None else tuple(choices),
            "auto": auto}  # fmt: skip
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # what to train
    method: str = option("eqm", "training method", group=DATA)
    data: str = option("checkerboard", "built-in data set name or path (.npy, .npz, image folder)", group=DATA)
    model: str = option("auto", "network", group=DATA, auto="mlp for data of dimension <= 16, else mlp-large; "
                        "cd on images resnet")  # fmt: skip
    conditional: bool = option(False, "class-conditional training with label dropout (for --class/--cfg)", group=DATA)
    image_size: int | None = option(None, "image folders: centre-crop every image to this square (ADM's "
                                    "preprocessing)", group=DATA, valid=">= 2")  # fmt: skip
    hflip: bool = option(False, "images: mirror each training image left-right with probability 1/2", group=DATA)
    # EqM target weighting c(gamma) and options
    c_schedule: str = option("truncated", "eqm/eqm-e: EqM target weighting c(gamma)", group=EQM)
    c_a: float | None = option(None, "truncation point a of the truncated c(gamma)", group=EQM, valid="[0, 1)",
                               auto="0.95 for data of dimension <= 16, else 0.8")  # fmt: skip
    c_scale: float = option(4.0, "eqm/eqm-e: the scale of c(gamma), its value near the noise", group=EQM, valid="> 0")
    gamma_power: float | None = option(None, "eqm/eqm-e/fm: draw gamma with density p*gamma^(p-1) (1: uniform; 2: "
                                       "more weight near the data)", group=EQM, valid="> 0",
                                       auto="eqm/eqm-e 2, fm 1")  # fmt: skip
    energy: str = option("dot", "eqm-e: the scalar energy of the network's output h: dot, E = -sum h*x, or l2, "
                         "E = sum h^2 / 2", group=EQM, choices=("dot", "l2"))  # fmt: skip
    dispersive: float = option(0.0, "weight of the dispersive loss on the network's features (0: off)", group=EQM,
                               valid=">= 0")  # fmt: skip
    label_dropout: float = option(0.1, "conditional training: fraction of labels dropped (for classifier-free "
                                  "guidance)", group=DATA, valid="[0, 1)")  # fmt: skip
    # recovery likelihood (drl, cdrl); None: chosen from the method and the data (see Method.resolve)
    levels: int = option(6, "drl/cdrl: number of noise levels", group=RECOVERY, valid=">= 2")
    langevin_steps: int | None = option(None, "drl/cdrl/cd: Langevin steps (per level) in training", group=RECOVERY,
                                        valid=">= 1", auto="cdrl 15, drl 30, cd 20")  # fmt: skip
    langevin_b2: float | None = option(None, "drl/cdrl: b^2 of the Langevin step s^2 = b^2 c sigma^2", group=RECOVERY,
                                       valid="> 0", auto="2e-3 for data of dimension <= 16, else drl 2e-4, "
                                       "cdrl 1e-3")  # fmt: skip
    pairing: bool | None = option(None, "drl/cdrl: noise-variance reduction, one epsilon for both levels",
                                  group=RECOVERY, auto="on for cdrl, off for drl")  # fmt: skip
    init_model: str = option("mlp-small", "cdrl: the initializer network", group=RECOVERY)
    init_lr: float | None = option(None, "cdrl: the initializer's learning rate", group=RECOVERY, valid="> 0",
                                   auto="--lr")  # fmt: skip
    data_scale: float | None = option(None, "drl/cdrl: scale of the normalised data under unit noise; cd: the energy "
                                      "network sees data-scale x the data, chains keep their step", group=RECOVERY,
                                      valid="> 0", auto="drl/cdrl 4 for data of dimension <= 16, else 1; "
                                      "cd vectors 6, images 1")  # fmt: skip
    # contrastive divergence (cd): chains x <- x - step grad E + noise z from a replay buffer
    # None: chosen from the data (see ContrastiveMethod.resolve)
    langevin_step: float | None = option(None, "cd: gradient step eta of the chains, x <- x - eta grad E + sigma z",
                                         group=CD, valid="> 0", auto="vectors 0.002, images 40")  # fmt: skip
    langevin_noise: float | None = option(None, "cd: noise std sigma of the chains", group=CD, valid=">= 0",
                                          auto="vectors sqrt(2 eta) (exact Langevin), images 0.01")  # fmt: skip
    langevin_clip: float | None = option(None, "cd: clip each element of grad E to [-C, C] (IGEBM; 0: off)", group=CD,
                                         valid=">= 0", auto="vectors 0, images 0.005")  # fmt: skip
    langevin_clamp: bool | None = option(None, "cd: clamp chains to the data's value range", group=CD,
                                         auto="on for images, off for vectors")  # fmt: skip
    langevin_mh: bool | None = option(None, "cd: Metropolis-adjust the training chains (MALA; exact Langevin only, "
                                      "no ICD terms): chains exact for exp(-E) at their step size", group=CD,
                                      auto="vectors on unless the chain is not exact Langevin or ICD terms are on; "
                                      "images off")  # fmt: skip
    data_jumps: bool | None = option(None, "cd: before each training chain, one Metropolis-Hastings jump per chain to "
                                     "a data point plus noise of std 0.3 (exact for exp(-E); lets chains cross "
                                     "between modes, so the energy learns the modes' weights)", group=CD,
                                     auto="vectors on, images off")  # fmt: skip
    buffer_size: int = option(10_000, "cd: replay buffer capacity", group=CD, valid=">= 1")
    buffer_reinit: float | None = option(None, "cd: fraction of chains started fresh (from --buffer-init) instead of "
                                         "the buffer", group=CD, valid="[0, 1]",
                                         auto="images 0.05, vectors 0.2")  # fmt: skip
    buffer_init: str | None = option(None, "cd: where fresh chains start: uniform in the data's box, normal (standard "
                                     "normal, where sampling from noise starts), or data (the batch plus noise of "
                                     "std 0.3: an even density, worse samples from noise)", group=CD,
                                     choices=BUFFER_INITS, auto="images uniform, vectors data")  # fmt: skip
    buffer_reservoir: bool = option(False, "cd: reservoir buffer (uniform over history) instead of a ring of the "
                                    "latest", group=CD)  # fmt: skip
    energy_reg: float | None = option(None, "cd: weight alpha of the energy regulariser alpha (E(x+)^2 + E(x-)^2)",
                                      group=CD, valid=">= 0", auto="vectors 0.01, images 1")  # fmt: skip
    spectral_norm: bool | None = option(None, "cd: spectral normalisation on all layers but the last", group=CD,
                                        auto="on")  # fmt: skip
    icd_kl: float = option(0.0, "cd: Improved CD KL term through the last Langevin step (weight; 0 off, ICD 1)",
                           group=CD, valid=">= 0")  # fmt: skip
    icd_entropy: float = option(0.0, "cd: Improved CD nearest-neighbour entropy term (weight; 0 off, ICD 0.3)",
                                group=CD, valid=">= 0")  # fmt: skip
    icd_augment: bool = option(False, "cd: Improved CD augmentation transitions (one-pixel shifts of buffer images)",
                               group=CD)  # fmt: skip
    # optimisation (progress is counted in optimiser steps and reported in samples seen)
    steps: int = option(4000, "total optimiser steps (with --resume: the new total)", group=OPTIM, valid=">= 1")
    batch_size: int = option(256, "training batch size, all processes together", group=OPTIM, valid=">= 1")
    lr: float = option(1e-3, "AdamW learning rate", group=OPTIM, valid="> 0")  # at most MAX_LR (validate)
    adam_beta1: float | None = option(None, "Adam's beta1 (momentum)", group=OPTIM, valid="[0, 1)",
                                      auto="0 for cd as IGEBM/ICD, 0.9 otherwise")  # fmt: skip
    adam_beta2: float = option(0.999, "Adam's beta2", group=OPTIM, valid="[0, 1)")
    weight_decay: float = option(0.0, "AdamW weight decay", group=OPTIM, valid=">= 0")
    warmup_samples: int = option(25_600, "linear learning-rate warm-up over this many samples (0: none)", group=OPTIM,
                                 valid=">= 0")  # fmt: skip
    grad_clip: float = option(1.0, "clip the gradient norm of each parameter group to this (0: off)", group=OPTIM,
                              valid=">= 0")  # fmt: skip
    ema_halflife_samples: int = option(50_000, "EMA half-life in samples", group=OPTIM, valid="> 0")
    ema_rampup: float = option(0.1, "EMA half-life at most this fraction of the samples seen so far (EDM; 0: off)",
                               group=OPTIM, valid="[0, 1]")  # fmt: skip
    seed: int = option(0, "seed of the initialisation, the data order and the training noise", group=OPTIM)
    # bookkeeping
    ckpt_every: int = option(1000, "write export + resume state every K steps", group=BOOKKEEPING, valid=">= 1")
    keep_exports: bool = option(False, "also keep every checkpoint's EMA export as exports/model-STEP.safetensors "
                                "(to evaluate along training); the resume state is always only the latest",
                                group=BOOKKEEPING)  # fmt: skip
    log_every: int = option(50, "log a row of statistics to log.csv every K steps", group=BOOKKEEPING, valid=">= 1")
    device: str = option("auto", "training device (auto: CUDA when available)", group=BOOKKEEPING,
                         choices=("auto", "cpu", "cuda"))  # fmt: skip
    bf16: bool = option(True, "bf16 autocast on CUDA (ignored on CPU)", group=BOOKKEEPING)
    tf32: bool = option(True, "TF32 matmuls/convolutions on CUDA (as the reference)", group=BOOKKEEPING)
    parallel: str = option("ddp", "data parallelism over the processes of torchrun: ddp (DistributedDataParallel, "
                           "a full replica per process) or fsdp (FSDP2 fully_shard: weights, gradients and AdamW "
                           "state sharded between steps, for models whose training state does not fit)",
                           group=BOOKKEEPING, choices=PARALLEL)  # fmt: skip
    compile: bool = option(False, "torch.compile the model for training", group=BOOKKEEPING)
    grad_checkpointing: bool = option(False, "transformer backbones: recompute each block in the backward pass "
                                      "(saves memory)", group=BOOKKEEPING)  # fmt: skip
    tensorboard: bool = option(False, "also log to TensorBoard (pip install 'energen[tensorboard]')", group=BOOKKEEPING)
    wandb: bool = option(False, "also log to Weights & Biases (pip install 'energen[wandb]')", group=BOOKKEEPING)
    calibrate: bool = option(True, "choose the default sampler budget on held-out data after training",
                             group=BOOKKEEPING)  # fmt: skip
    calibrate_samples: int = option(1000, "held-out samples the calibration uses", group=BOOKKEEPING, valid=">= 100")

    def validate(self) -> TrainConfig:
        """Check every value against its declared range and choices (registry names are not checked here)."""
        for f in fields(self):
            v, flag = getattr(self, f.name), f.name.replace("_", "-")
            valid, choices = f.metadata["valid"], f.metadata["choices"]
            if v is None:
                continue
            if valid is not None and not within(v, valid):
                raise ConfigError(f"{flag} {range_text(valid)}")
            if choices is not None and v not in choices:
                raise ConfigError(f"{flag} must be one of {', '.join(choices)}, got {v!r}")
        for name in ("lr", "init_lr"):  # an upper bound besides the declared range: larger rates only diverge
            if (v := getattr(self, name)) is not None and v > MAX_LR:
                raise ConfigError(f"{name.replace('_', '-')} must be <= {MAX_LR:g} (larger rates diverge), got {v:g}")
        return self

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "config") -> TrainConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
        out = {}
        for k, v in d.items():
            typ = known[k].type
            if v is None and typ.endswith("| None"):
                out[k] = None
                continue
            base = typ.removesuffix(" | None")
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[base]
            if isinstance(v, bool) and base != "bool" or not isinstance(v, want):
                raise ConfigError(f"{where}: {k} must be of type {base}, got {v!r}")
            out[k] = float(v) if base == "float" else v
        return cls(**out)

    @classmethod
    def parse_flags(cls, argv: Sequence[str], choices: dict[str, Sequence[str]] | None = None) -> dict:
        """The options given explicitly in ``argv`` (``energen train`` flags, e.g. ``["--lr", "0.01"]``), as a
        dict of field name -> value. Raises :class:`ConfigError` on an unknown flag or a bad value."""
        p = _RaisingParser(prog="options", add_help=False)
        add_config_arguments(p, choices)
        return explicit_options(p.parse_args(list(argv)))


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(message)


def default_text(f: Field) -> str:
    """How ``--help`` shows a field's default: ``auto: <rule>`` for data-dependent ones."""
    if f.metadata["auto"] is not None:
        return f"auto: {f.metadata['auto']}"
    if f.default is None:
        return "none"
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    return str(f.default)


def _value_type(f: Field, flag: str) -> Any:
    """The argparse ``type=`` of a field: converts, and checks the range (a ConfigError, one line)."""
    base = f.type.removesuffix(" | None")
    convert, valid = {"int": int, "float": float, "str": str}[base], f.metadata["valid"]

    def parse(s: str):
        v = convert(s)
        if valid is not None and not within(v, valid):
            raise ConfigError(f"{flag} {range_text(valid)}, got {s}")
        return v

    parse.__name__ = base  # argparse: "invalid int value: 'ten'"
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, choices: dict[str, Sequence[str]] | None = None) -> None:
    """One flag per :class:`TrainConfig` field, ``--field-name`` (booleans ``--x/--no-x``), in one argument group
    per :data:`GROUPS` entry, with help, the default shown, the type, choices and range checked as it parses
    (a value out of range raises :class:`ConfigError`). Every default is ``None``, so :func:`explicit_options`
    can tell the flags given. ``choices``: allowed values of registry-named fields (e.g. ``{"method": [...]}``)."""
    choices = choices or {}
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for f in fields(TrainConfig):
        flag = f.name.replace("_", "-")
        text = f"{f.metadata['help']} (default: {default_text(f)})".replace("%", "%%")
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": text}
        if f.type.removesuffix(" | None") == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _value_type(f, flag)
            allowed = choices.get(f.name, f.metadata["choices"])
            if allowed is not None:
                kw["choices"] = list(allowed)
            else:
                kw["metavar"] = f.name.upper()
        groups[f.metadata["group"]].add_argument("--" + flag, **kw)


def explicit_options(namespace: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` fields given as flags in a namespace parsed with :func:`add_config_arguments`."""
    return {f.name: v for f in fields(TrainConfig) if (v := getattr(namespace, f.name, None)) is not None}


def read_config_file(path: str) -> dict:
    """A JSON or YAML mapping of TrainConfig keys (dashes or underscores)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text)
        elif p.suffix == ".json":
            d = json.loads(text)
        else:
            raise ConfigError(f"config file {path!r}: use .json, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - json and yaml raise different types
        raise ConfigError(f"config file {path!r} is not valid: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of options")
    return {k.replace("-", "_"): v for k, v in d.items()}
