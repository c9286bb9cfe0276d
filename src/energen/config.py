"""Typed configuration, saved as ``config.json`` in every run directory.

Values come, in increasing priority, from the dataclass defaults, a ``--config`` file (JSON or YAML,
unknown keys rejected) and explicit command-line flags. ``"auto"`` fields are filled from the data by
:func:`energen.training.resolve_config` before training and saved resolved.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import ConfigError


@dataclass
class TrainConfig:
    # what to train
    method: str = "eqm"
    data: str = "checkerboard"
    model: str = "auto"  # "auto": chosen from the data's dimension
    conditional: bool = False
    image_size: int | None = None  # image folders: centre-crop every image to this square (ADM preprocessing)
    hflip: bool = False  # images: mirror each training image left-right with probability 1/2
    # EqM target weighting c(gamma) and options
    c_schedule: str = "truncated"
    c_a: float | None = None  # truncation point a; None: chosen from the data (see resolve_config)
    c_scale: float = 4.0
    gamma_power: float | None = None  # gamma drawn with density p gamma^(p-1); None: eqm/eqm-e 2, fm 1 (uniform)
    energy: str = "dot"  # EqM-E parameterisation: "dot" | "l2"
    dispersive: float = 0.0
    label_dropout: float = 0.1
    # recovery likelihood (drl, cdrl); None: chosen from the method and the data (see Method.resolve)
    levels: int = 6
    langevin_steps: int | None = None  # K per level in training (cdrl 15, drl 30)
    langevin_b2: float | None = None  # b^2 in the Langevin step s_i^2 = b^2 c_i sigma_{i+1}^2
    pairing: bool | None = None  # noise-variance reduction: x_i, x_{i+1} share one epsilon (cdrl on, drl off)
    init_model: str = "mlp-small"  # cdrl's initializer network
    init_lr: float | None = None  # the initializer's learning rate (None: lr)
    data_scale: float | None = None  # drl/cdrl: the diffusion runs on data_scale * normalised data (4 for dim <= 16,
    # else 1); cd: the energy network sees data_scale * normalised data (vectors 6, images 1), its chains' step
    # and noise stay in normalised units
    # contrastive divergence (cd): chains x <- x - step grad E + noise z from a replay buffer
    # None: chosen from the data (see ContrastiveMethod.resolve)
    langevin_step: float | None = None  # eta, the gradient step
    langevin_noise: float | None = None  # sigma; vectors sqrt(2 eta) (exact Langevin at temperature 1)
    langevin_clip: float | None = None  # per-element clip of grad E (IGEBM), 0: off
    langevin_clamp: bool | None = None  # clamp chains to the data's box; None: images yes, vectors no
    langevin_mh: bool | None = None  # cd: Metropolis-adjusted training chains (exact Langevin only); None: vectors
    # on (unless the chain is not exact Langevin or ICD terms are on), images off
    data_jumps: bool | None = None  # cd: an independence Metropolis-Hastings jump to the batch's data + noise before
    # each chain; None: vectors on, images off
    buffer_size: int = 10_000
    buffer_reinit: float | None = None  # fraction of chains started fresh (buffer_init); None: images 0.05, vectors 0.2
    buffer_init: str | None = None  # "uniform" (box) | "normal" | "data" (+ noise); None: images uniform, else data
    buffer_reservoir: bool = False  # reservoir (uniform over history) instead of a ring of the latest
    energy_reg: float | None = None  # alpha of alpha (E(x+)^2 + E(x-)^2)
    spectral_norm: bool | None = None  # None: on (cd)
    icd_kl: float = 0.0  # Improved CD: weight of the KL term through the last Langevin step
    icd_entropy: float = 0.0  # Improved CD: weight of the nearest-neighbour entropy term (ICD: 0.3)
    icd_augment: bool = False  # Improved CD: shift buffer images before their chains (images only)
    # optimisation (progress is counted in optimiser steps and reported in samples seen)
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    adam_beta1: float | None = None  # Adam's momentum; None: 0 for cd (IGEBM, ICD), else 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    warmup_samples: int = 25_600
    grad_clip: float = 1.0
    ema_halflife_samples: int = 50_000
    ema_rampup: float = 0.1  # half-life at most this fraction of the samples seen so far (EDM)
    seed: int = 0
    # bookkeeping
    ckpt_every: int = 1000
    log_every: int = 50
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    tf32: bool = True  # TF32 matmuls and convolutions on CUDA (as the reference)
    compile: bool = False  # torch.compile the model for training
    grad_checkpointing: bool = False  # transformer backbones: recompute each block in the backward pass
    tensorboard: bool = False
    wandb: bool = False
    calibrate: bool = True  # choose the default sampler budget from held-out data after training
    calibrate_samples: int = 1000

    def validate(self) -> TrainConfig:
        from .interpolants import WEIGHTINGS
        from .losses.replay_buffer import BUFFER_INITS
        from .methods.registry import METHODS
        from .networks.base import MODELS

        METHODS.get(self.method)
        if self.model != "auto":
            MODELS.get(self.model)
        MODELS.get(self.init_model)
        WEIGHTINGS.get(self.c_schedule)
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.image_size is None or self.image_size >= 2, "image-size must be >= 2"),
            (self.batch_size >= 1, "batch-size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.adam_beta1 is None or 0 <= self.adam_beta1 < 1, "adam-beta1 must be in [0, 1)"),
            (0 <= self.adam_beta2 < 1, "adam-beta2 must be in [0, 1)"),
            (self.weight_decay >= 0, "weight-decay must be >= 0"),
            (self.warmup_samples >= 0, "warmup-samples must be >= 0"),
            (self.grad_clip >= 0, "grad-clip must be >= 0 (0 disables clipping)"),
            (self.ema_halflife_samples > 0, "ema-halflife-samples must be > 0"),
            (0 < self.ema_rampup <= 1 or self.ema_rampup == 0, "ema-rampup must be in [0, 1]"),
            (self.ckpt_every >= 1, "ckpt-every must be >= 1"),
            (self.log_every >= 1, "log-every must be >= 1"),
            (self.calibrate_samples >= 100, "calibrate-samples must be >= 100"),
            (self.c_a is None or 0 <= self.c_a < 1, "c-a must be in [0, 1)"),
            (self.c_scale > 0, "c-scale must be > 0"),
            (self.gamma_power is None or self.gamma_power > 0, "gamma-power must be > 0"),
            (self.energy in ("dot", "l2"), f"energy must be 'dot' or 'l2', got {self.energy!r}"),
            (self.dispersive >= 0, "dispersive must be >= 0"),
            (0 <= self.label_dropout < 1, "label-dropout must be in [0, 1)"),
            (self.levels >= 2, "levels must be >= 2"),
            (self.langevin_steps is None or self.langevin_steps >= 1, "langevin-steps must be >= 1"),
            (self.langevin_b2 is None or self.langevin_b2 > 0, "langevin-b2 must be > 0"),
            (self.langevin_step is None or self.langevin_step > 0, "langevin-step must be > 0"),
            (self.langevin_noise is None or self.langevin_noise >= 0, "langevin-noise must be >= 0"),
            (self.langevin_clip is None or self.langevin_clip >= 0, "langevin-clip must be >= 0 (0: off)"),
            (self.buffer_size >= 1, "buffer-size must be >= 1"),
            (self.buffer_reinit is None or 0 <= self.buffer_reinit <= 1, "buffer-reinit must be in [0, 1]"),
            (self.buffer_init in (None, *BUFFER_INITS), f"buffer-init must be one of {BUFFER_INITS}"),
            (self.energy_reg is None or self.energy_reg >= 0, "energy-reg must be >= 0"),
            (self.icd_kl >= 0 and self.icd_entropy >= 0, "icd-kl and icd-entropy must be >= 0"),
            (self.init_lr is None or self.init_lr > 0, "init-lr must be > 0"),
            (self.data_scale is None or self.data_scale > 0, "data-scale must be > 0"),
            (self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
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


def saved_config(run_dir: Path) -> TrainConfig:
    """The configuration a run directory was trained with. Runs written before an option existed get the
    value they were trained with (``gamma_power``: uniform gamma)."""
    from .training.checkpoint import read_json

    d = read_json(run_dir / "config.json")
    if isinstance(d, dict):
        d.setdefault("gamma_power", 1.0)
        d.setdefault("adam_beta1", 0.9)
        if d.get("method") == "cd" and "langevin_clamp" not in d:  # before data-dependent cd defaults
            d |= {"langevin_clamp": True, "langevin_clip": d.get("langevin_clip") or 0.0}
        if d.get("method") == "cd" and d.get("data_scale") is None:  # before cd scaled its inputs
            d["data_scale"] = 1.0
        if d.get("method") == "cd" and d.get("buffer_init") is None:  # before fresh chains could start normal
            d["buffer_init"] = "uniform"
        if d.get("method") == "cd":  # before Metropolis-adjusted chains and data jumps (None now means on for vectors)
            d["langevin_mh"] = d.get("langevin_mh") or False
            d["data_jumps"] = d.get("data_jumps") or False
    return TrainConfig.from_dict(d, where=str(run_dir / "config.json"))


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
