"""The ``energen`` command line: train, sample, eval, plot, demo, and the tasks: denoise, inpaint, ood,
compose, translate.

Parsing is strict: an unknown flag or a bad value prints one line and exits with status 2 (argparse's
convention). Problems with files, data or checkpoints print ``energen: error: ...`` and exit non-zero
without touching existing files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields, replace
from pathlib import Path

from ..config import TrainConfig, read_config_file
from ..errors import ConfigError, DataError, EnergenError

TRAIN_CHOICES = {
    "method": lambda: __import__("energen.methods", fromlist=["METHODS"]).METHODS.names(),
    "model": lambda: ["auto", *__import__("energen.networks", fromlist=["MODELS"]).MODELS.names()],
    "init_model": lambda: __import__("energen.networks", fromlist=["MODELS"]).MODELS.names(),
    "c_schedule": lambda: __import__("energen.interpolants", fromlist=["W"]).WEIGHTINGS.names(),
    "energy": lambda: ["dot", "l2"],
    "buffer_init": lambda: ["uniform", "normal", "data"],
    "device": lambda: ["auto", "cpu", "cuda"],
}


TRAIN_HELP = {
    "method": "training method",
    "data": "built-in data set name or path (.npy, .npz, image folder)",
    "model": "network (auto: chosen from the data)",
    "steps": "total optimiser steps (with --resume: the new total)",
    "ckpt_every": "write export + resume state every K steps",
    "conditional": "class-conditional training with label dropout (for --class/--cfg)",
    "c_schedule": "EqM target weighting c(gamma)",
    "c_a": "truncation point a of the truncated c(gamma) (default: 0.95 for data of dimension <= 16, else 0.8)",
    "gamma_power": "eqm/eqm-e/fm: draw gamma with density p*gamma^(p-1) (1: uniform; 2: more weight near the data)",
    "ema_halflife_samples": "EMA half-life in samples",
    "image_size": "image folders: centre-crop every image to this square (ADM's preprocessing)",
    "hflip": "images: mirror each training image left-right with probability 1/2",
    "tf32": "TF32 matmuls/convolutions on CUDA (default on)",
    "compile": "torch.compile the model for training",
    "grad_checkpointing": "transformer backbones: recompute each block in the backward pass (saves memory)",
    "adam_beta1": "Adam's beta1 (momentum; default: 0 for cd as IGEBM/ICD, 0.9 otherwise)",
    "adam_beta2": "Adam's beta2",
    "calibrate": "choose the default sampler budget on held-out data after training",
    "levels": "drl/cdrl: number of noise levels",
    "langevin_steps": "drl/cdrl/cd: Langevin steps (per level) in training (default: cdrl 15, drl 30, cd 20)",
    "langevin_b2": "drl/cdrl: b^2 of the Langevin step s^2 = b^2 c sigma^2 (default: from the method and data)",
    "pairing": "drl/cdrl: noise-variance reduction, one epsilon for both levels (default: on for cdrl)",
    "init_model": "cdrl: the initializer network",
    "langevin_step": "cd: gradient step eta of the chains, x <- x - eta grad E + sigma z",
    "langevin_noise": "cd: noise std sigma of the chains (default: sqrt(2 eta), exact Langevin)",
    "langevin_clip": "cd: clip each element of grad E to [-C, C] (IGEBM), default off",
    "langevin_clamp": "cd: clamp chains to the data's value range (default: on for images, off for vectors)",
    "langevin_mh": "cd: Metropolis-adjust the training chains (MALA; exact Langevin only, no ICD terms): chains "
    "exact for exp(-E) at their step size",
    "data_jumps": "cd: before each training chain, one Metropolis-Hastings jump per chain to a data point plus "
    "noise of std 0.3 (exact for exp(-E); lets chains cross between modes, so the energy learns the modes' "
    "weights)",
    "buffer_size": "cd: replay buffer capacity",
    "buffer_reinit": "cd: fraction of chains started fresh (from --buffer-init) instead of the buffer "
    "(default: images 0.05, vectors 0.2)",
    "buffer_init": "cd: where fresh chains start: uniform in the data's box, normal (standard normal, where "
    "sampling from noise starts), or data (the batch plus noise of std 0.3: an even density, worse samples from "
    "noise); default: images uniform, vectors normal",
    "buffer_reservoir": "cd: reservoir buffer (uniform over history) instead of a ring of the latest",
    "energy_reg": "cd: weight alpha of the energy regulariser alpha (E(x+)^2 + E(x-)^2)",
    "spectral_norm": "cd: spectral normalisation on all layers but the last (default on)",
    "icd_kl": "cd: Improved CD KL term through the last Langevin step (weight; 0 off, ICD 1)",
    "icd_entropy": "cd: Improved CD nearest-neighbour entropy term (weight; 0 off, ICD 0.3)",
    "icd_augment": "cd: Improved CD augmentation transitions (one-pixel shifts of buffer images)",
    "init_lr": "cdrl: the initializer's learning rate (default: --lr)",
    "data_scale": "drl/cdrl: scale of the normalised data under unit noise (default: 4 for dim <= 16, else 1); "
    "cd: the energy network sees data-scale x the data, chains keep their step (default: vectors 6, images 1)",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
    return v


def _nonneg_float(s: str) -> float:
    v = float(s)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory (must be new or empty unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out to --steps")
    p.add_argument("--config", help="JSON or YAML file of options; flags given here override it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kw: dict = {"dest": f.name, "default": None, "help": TRAIN_HELP.get(f.name)}
        if f.type.removesuffix(" | None") == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = {"int": int, "float": float, "str": str}[f.type.removesuffix(" | None")]
            kw["metavar"] = f.name.upper()
        if f.name in TRAIN_CHOICES:
            kw["choices"] = TRAIN_CHOICES[f.name]()
            kw.pop("metavar", None)
        p.add_argument(flag, **kw)


def _cmd_train(a: argparse.Namespace) -> int:
    from ..training.loop import train

    explicit = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if getattr(a, f.name) is not None}
    base = read_config_file(a.config) if a.config else {}
    cfg = TrainConfig.from_dict(base | explicit, where=a.config or "options")
    if not a.resume:
        cfg.validate()
    res = train(cfg, a.out, resume=a.resume, overrides=base | explicit, progress=not a.quiet)
    print(json.dumps({"run_dir": str(res.run_dir), "step": res.step, "final_loss": res.final_loss}))
    return 0


def _check_new_output(out: Path, overwrite: bool, suffixes: tuple[str, ...], allow_dir: bool) -> None:
    if out.suffix not in suffixes and not (allow_dir and out.suffix == ""):
        kinds = ", ".join(suffixes) + (" or a directory" if allow_dir else "")
        raise ConfigError(f"--out {str(out)!r}: use {kinds}")
    if out.exists() and not overwrite and not (out.is_dir() and not any(out.iterdir())):
        raise ConfigError(f"--out {str(out)!r} already exists; choose another path (or pass --overwrite)")


def _sampler_settings(run, a: argparse.Namespace, base=None):
    """The run's default sampler (or ``base``), changed by the sampler flags of ``a``."""
    settings = replace(base or run.default_sampler, extra={})
    if a.sampler is not None and a.sampler != settings.sampler and "recovery" in (a.sampler, settings.sampler):
        settings = _switch_family(run, a.sampler)
    horizon = settings.steps * settings.step_size
    new = replace(settings, sampler=a.sampler or settings.sampler)
    if new.sampler == "smc" and settings.sampler not in ("smc", "langevin"):  # a Langevin step s (gd's eta = s^2 / 2)
        new = replace(new, step_size=math.sqrt(2 * settings.step_size))
    if a.langevin_steps is not None:
        if new.sampler != "recovery":
            raise ConfigError("--langevin-steps sets the steps per noise level of the recovery sampler (drl, cdrl)")
        new = replace(new, steps=a.langevin_steps)
    if a.steps is not None:
        new = replace(new, steps=a.steps)
        # same total time unless --step-size; recovery: K per level (the sampler rescales its steps to keep
        # K s^2); smc: a path of K steps at one Langevin step s, whatever K
        if new.sampler not in ("recovery", "smc"):
            new = replace(new, step_size=horizon / a.steps)
    if a.step_size is not None:
        new = replace(new, step_size=a.step_size)
    for k in ("tol", "momentum", "noise", "ode_method", "temperature"):
        if getattr(a, k) is not None:
            new = replace(new, **{k: getattr(a, k)})
    if getattr(a, "cfg", None) is not None and getattr(a, "label", None) is None:  # sample, inpaint
        raise ConfigError("--cfg needs --class")
    return new


def _cmd_sample(a: argparse.Namespace) -> int:
    """Sampling; under ``torchrun`` each process draws its share (sample i always from noise stream
    seed + i, so the result does not depend on the number of processes) and rank 0 gathers."""
    import torch

    from ..data.samples import image_decoder, png_folder_to_npz, write_samples
    from ..run import Run
    from ..training import distributed as dist

    out = Path(a.out)
    _check_new_output(out, a.overwrite, (".npy", ".npz"), allow_dir=True)
    if a.npz is not None:
        if out.suffix:
            raise ConfigError("--npz goes with a directory --out (the PNGs it gathers)")
        _check_new_output(Path(a.npz), a.overwrite, (".npz",), allow_dir=False)
    device = torch.device(a.device)
    dist.init(device)
    rank, world = dist.rank(), dist.world_size()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", dist.local_rank())
    run = Run(a.run_dir, device=device)
    if out.suffix != ".npy":
        image_decoder(run.info, a.vae)  # fails now, not after sampling
    new = _sampler_settings(run, a)
    lo, hi = a.n * rank // world, a.n * (rank + 1) // world
    label = a.label
    if a.random_classes:
        if a.label is not None or run.num_classes == 0:
            raise ConfigError("--random-classes needs a conditional run and no --class")
        label = torch.tensor([torch.randint(run.num_classes, (1,), generator=torch.Generator().manual_seed(a.seed + i))
                              for i in range(lo, hi)])  # fmt: skip
    if dist.is_main() and out.suffix == "" and out.exists() and a.overwrite:
        for f in out.glob("*.png"):
            f.unlink()
    dist.barrier()  # every rank has checked its outputs before any writes
    x, o = run.sample(hi - lo, seed=a.seed + lo, settings=new, label=label,
                      cfg_scale=1.0 if a.cfg is None else a.cfg, batch_size=a.batch_size, start=a.start)  # fmt: skip
    if out.suffix == "":
        write_samples(x, run.info, out, first_index=lo, vae=a.vae, device=device)
    steps = o.steps.float().cpu()
    parts = dist.gather_to_main((x.cpu() if out.suffix else None, steps, o.nfe))
    if dist.is_main():
        if out.suffix:
            write_samples(torch.cat([p[0] for p in parts]), run.info, out, vae=a.vae, device=device)
        if a.npz is not None:
            png_folder_to_npz(out, a.n, Path(a.npz))
        steps = torch.cat([p[1] for p in parts])
        print(json.dumps({"out": str(out), "n": a.n, "processes": world, "sampler": new.to_json(),
                          "mean_steps": float(steps.mean()), "max_steps": int(steps.max()),
                          "nfe": sum(p[2] for p in parts)}))  # fmt: skip
    dist.barrier()
    return 0


def _write(x, info, out: Path, overwrite: bool) -> None:
    from ..data.samples import write_samples

    if out.suffix == "" and out.exists() and overwrite:
        for f in out.glob("*.png"):
            f.unlink()
    write_samples(x, info, out)


def _switch_family(run, sampler: str):
    """Settings when the sampler asked for is of the other family than the run's default: the recovery
    sampler walks a drl/cdrl run's noise levels; the field samplers act on its level-0 energy."""
    from ..run import default_sampler

    if sampler == "recovery":  # Run.sample refuses it for a run of another method
        return default_sampler(run.method, run.cfg, run.info)
    return run.field_sampler(sampler)


def _read_input(path: str, info, what: str):
    from ..data.samples import read_samples

    x = read_samples(path, info)
    if len(x) == 0:
        raise ConfigError(f"{what} {path!r} holds no samples")
    return x


def _new_png(a: argparse.Namespace) -> Path | None:
    png = None if a.png is None else Path(a.png)
    if png is not None:
        _check_new_output(png, a.overwrite, (".png",), allow_dir=False)
    return png


def _task_outputs(a: argparse.Namespace) -> tuple[Path, Path | None]:
    out = Path(a.out)
    _check_new_output(out, a.overwrite, (".npy", ".npz"), allow_dir=True)
    return out, _new_png(a)


def _report(a, run, out: Path, png: Path | None, x, o, panels, **extra) -> int:
    _write(x, run.info, out, a.overwrite)
    if png is not None:
        from ..plotting import plot_panels

        plot_panels(panels, run.info, png)
    steps = o.steps.float()
    print(json.dumps({"out": str(out), "n": len(x), **extra, "mean_steps": float(steps.mean()), "nfe": o.nfe,
                      **({"png": str(png)} if png else {})}))  # fmt: skip
    return 0


def _cmd_denoise(a: argparse.Namespace) -> int:
    from ..run import Run
    from ..tasks.denoising import denoise, restoring_settings

    out, png = _task_outputs(a)
    run = Run(a.run_dir, device=a.device)
    x = _read_input(a.input, run.info, "--input")
    settings = _sampler_settings(run, a, base=restoring_settings(run.default_sampler))
    y, o = denoise(run, x, noise_std=a.noise_std, settings=settings, seed=a.seed, batch_size=a.batch_size)
    return _report(a, run, out, png, y, o, [("input", x, 1), ("denoised", y, 1)], sampler=settings.to_json())


def _cmd_inpaint(a: argparse.Namespace) -> int:
    import torch

    from ..data.samples import read_mask
    from ..run import Run
    from ..tasks.inpainting import broadcast_mask, inpaint

    out, png = _task_outputs(a)
    run = Run(a.run_dir, device=a.device)
    x = _read_input(a.input, run.info, "--input")
    mask = broadcast_mask(read_mask(a.mask, run.info), x)
    settings = _sampler_settings(run, a)
    y, o = inpaint(run, x, mask, completions=a.completions, settings=settings, seed=a.seed, label=a.label,
                   cfg_scale=1.0 if a.cfg is None else a.cfg, rounds=a.rounds, renoise=a.renoise,
                   batch_size=a.batch_size)  # fmt: skip
    shown = torch.where(mask, x, torch.full_like(x, run.info.lo))
    return _report(a, run, out, png, y, o, [("input", x, 1), ("known", shown, 1), ("completions", y, a.completions)],
                   completions=a.completions, sampler=settings.to_json())  # fmt: skip


def _cmd_translate(a: argparse.Namespace) -> int:
    from ..run import Run
    from ..tasks.translation import translate

    out, png = _task_outputs(a)
    run = Run(a.run_dir, device=a.device)
    x = _read_input(a.input, run.info, "--input")
    settings = _sampler_settings(run, a)
    y, o = translate(run, x, a.label, strength=a.strength, settings=settings, seed=a.seed,
                     cfg_scale=1.0 if a.cfg is None else a.cfg, batch_size=a.batch_size)  # fmt: skip
    return _report(a, run, out, png, y, o, [("input", x, 1), (f"class {a.label}", y, 1)], target=a.label,
                   strength=a.strength, sampler=settings.to_json())  # fmt: skip


def _parse_expert(spec: str, weight: float, device: str):
    from ..run import Run
    from ..tasks.composition import Expert

    path, label = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.lstrip("-").isdigit() and not Path(spec).is_dir():
        path, label = head, int(tail)
    run = Run(path, device=device)
    if label is not None:
        run.labels(label, 1)
    return Expert(run, label, weight)


def _cmd_compose(a: argparse.Namespace) -> int:
    from ..tasks.composition import compose, default_settings

    out, png = _task_outputs(a)
    weights = a.weights or [1.0] * len(a.experts)
    if len(weights) != len(a.experts):
        raise ConfigError(f"--weights: {len(weights)} weight(s) for {len(a.experts)} expert(s)")
    experts = [_parse_expert(e, w, a.device) for e, w in zip(a.experts, weights, strict=True)]
    run = experts[0].run
    settings = _sampler_settings(run, a, base=default_settings(run))
    x, o = compose(experts, a.n, settings=settings, seed=a.seed, batch_size=a.batch_size)
    panels = [("composed", x, 1)]
    if png is not None and run.info.kind == "vector":  # each expert alone, for comparison
        panels = [(str(e).rsplit("/", 1)[-1], compose([e], a.n, seed=a.seed)[0], 1) for e in experts] + panels
    return _report(a, run, out, png, x, o, panels, experts=[str(e) for e in experts], weights=weights,
                   sampler=settings.to_json())  # fmt: skip


def _cmd_ood(a: argparse.Namespace) -> int:
    import numpy as np

    from ..run import Run
    from ..tasks.ood import default_score, ood_metrics, ood_scores

    scores_out = None if a.scores is None else Path(a.scores)
    if scores_out is not None:
        _check_new_output(scores_out, a.overwrite, (".npz",), allow_dir=False)
    png = _new_png(a)
    run = Run(a.run_dir, device=a.device)
    x_in = _read_input(a.in_path, run.info, "--in")
    x_ood = None if a.ood is None else _read_input(a.ood, run.info, "--ood")
    kw = dict(score=a.score, level=a.level, batch_size=a.batch_size)
    s_in = ood_scores(run, x_in, **kw)
    s_ood = None if x_ood is None else ood_scores(run, x_ood, **kw)
    result = {"score": a.score or default_score(run), "level": a.level, "in": _summary(s_in)}
    if s_ood is not None:
        result |= {"ood": _summary(s_ood), **ood_metrics(s_in, s_ood)}
    if scores_out is not None:
        import io

        from ..utils import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **{"in": s_in.numpy(), **({} if s_ood is None else {"ood": s_ood.numpy()})})
        atomic_write_bytes(scores_out, buf.getvalue())
        result["scores"] = str(scores_out)
    if png is not None:
        from ..plotting import plot_scores

        plot_scores(s_in, s_ood, result["score"], png)
        result["png"] = str(png)
    print(json.dumps(result))
    return 0


def _summary(s) -> dict:
    return {"n": len(s), "mean": float(s.mean()), "std": float(s.std()) if len(s) > 1 else 0.0}


def _cmd_eval(a: argparse.Namespace) -> int:
    import torch

    from ..data.datasets import load_dataset
    from ..data.samples import read_samples
    from ..evaluation.metrics import evaluate

    ds = load_dataset(a.data)
    x = read_samples(a.samples, ds.info)
    ref, _ = ds.reference(a.n_ref)
    scale = torch.tensor(ds.info.scale).reshape(1, -1) if ds.info.kind == "vector" else torch.tensor(ds.info.scale)
    metrics = evaluate(x, ref, data_name=ds.info.name, scale=scale, target_class=a.label)
    print(json.dumps(metrics))
    return 0


def _cmd_plot(a: argparse.Namespace) -> int:
    from ..plotting import plot_run
    from ..run import Run

    out = Path(a.out)
    _check_new_output(out, a.overwrite, (".png",), allow_dir=False)
    plot_run(Run(a.run_dir), out, n=a.n, seed=a.seed)
    print(json.dumps({"out": str(out)}))
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(a.out, steps=a.steps)
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    import torch

    from ..networks.base import MODELS, NetSpec
    from ..networks.transformer import DiT, reference_extra_parameters

    shape = (a.channels, a.image_size, a.image_size)
    print(f"# parameters for inputs {a.channels}x{a.image_size}x{a.image_size}, {a.classes} classes "
          "(reference: the SiT/DiT module of the EqM repository, pos_embed and sigma half included)")  # fmt: skip
    print(f"{'model':<10} {'parameters':>14} {'reference':>14}")
    with torch.device("meta"):  # counts without allocating memory
        for name in MODELS.names():
            try:
                net = MODELS.get(name)(NetSpec(shape, num_classes=a.classes))
            except ConfigError:
                print(f"{name:<10} {'(not for this shape)':>14}")
                continue
            n = sum(p.numel() for p in net.parameters())
            ref = f"{n + reference_extra_parameters(net):,}" if isinstance(net, DiT) else ""
            print(f"{name:<10} {n:>14,} {ref:>14}")
    return 0


def _cmd_fid(a: argparse.Namespace) -> int:
    import numpy as np

    from ..evaluation.fid import InceptionFeatures, image_metrics, read_images, save_stats

    if (a.ref is None) == (a.save_stats is None):
        raise ConfigError("give --ref (to score SAMPLES) or --save-stats (to write SAMPLES' statistics)")
    net = InceptionFeatures(a.inception, device=a.device, batch_size=a.batch_size)
    images = read_images(a.samples)
    if a.save_stats is not None:
        out = Path(a.save_stats)
        _check_new_output(out, a.overwrite, (".npz",), allow_dir=False)
        save_stats(out, net.features(images))
        print(json.dumps({"n_images": len(images), "stats": str(out)}))
        return 0
    ref = Path(a.ref)
    if not ref.exists():
        raise DataError(f"{ref}: reference not found")
    is_stats = False
    if ref.suffix == ".npz":
        with np.load(ref, allow_pickle=False) as z:
            is_stats = "mu" in z.files
    kw = {"ref_stats": ref} if is_stats else {"ref_images": read_images(ref)}
    print(json.dumps(image_metrics(images, net, splits=a.splits, **kw)))
    return 0


def _cmd_encode(a: argparse.Namespace) -> int:
    from ..data.latents import encode_folder

    meta = encode_folder(a.data, a.vae, a.out, image_size=a.image_size, flip=a.flip, device=a.device,
                         batch_size=a.batch_size)  # fmt: skip
    print(json.dumps({"out": a.out} | meta))
    return 0


def _cmd_convert(a: argparse.Namespace) -> int:
    from ..convert import convert

    arch = convert(a.checkpoint, a.out, which=a.which, energy=a.energy, vae=a.vae)
    print(f"{a.checkpoint} -> {a.out}: {arch['model']}, {arch['num_classes']} classes, latents "
          f"{arch['channels']}x{arch['image']}x{arch['image']}")  # fmt: skip
    return 0


def _add_sampler_args(s: argparse.ArgumentParser) -> None:
    from ..samplers.ode import ODE_METHODS
    from ..samplers.registry import SAMPLERS

    s.add_argument(
        "--sampler",
        choices=[*SAMPLERS.names(), "recovery"],
        help="default: the run's own (eqm: calibrated gd; fm: Euler; drl/cdrl: recovery through the levels)",
    )
    s.add_argument("--steps", type=_positive_int, help="step count K (keeps the run's total eta*K)")
    s.add_argument(
        "--langevin-steps",
        type=_positive_int,
        help="recovery sampler: Langevin steps per level (step size rescaled by sqrt(K_train/K))",
    )
    s.add_argument("--temperature", type=_nonneg_float, help="noise multiplier of langevin and recovery (default 1)")
    s.add_argument("--step-size", type=_positive_float, help="step size eta")
    s.add_argument("--tol", type=_positive_float, help="adaptive stopping: stop a sample when RMS(field) < TOL")
    s.add_argument("--momentum", type=float, help="Nesterov momentum (nag), default 0.3")
    s.add_argument("--noise", type=_nonneg_float, help="initial Langevin temperature, annealed to 0 (gd, nag)")
    s.add_argument("--ode-method", choices=ODE_METHODS, help="torchdiffeq method for --sampler ode")


def _add_common_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--seed", type=int, default=0, help="sample i uses the noise stream seeded SEED+i")
    s.add_argument("--batch-size", type=_positive_int, default=1000)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _add_task_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--png", help="also write a picture: image grid (images) or scatter plot (2-D)")
    _add_common_args(s)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="energen", description="Energy-based generative modelling: train, sample, evaluate, plot.")
    p.add_argument("--version", action="version", version=f"energen {__import__('energen').__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model into a run directory")
    _add_train_args(t)
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n", type=_positive_int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help=".npy (data coordinates), .npz (ADM uint8 images) or a directory")
    s.add_argument("--npz", help="with a directory --out: also gather its PNGs into this ADM .npz")
    s.add_argument("--vae", help="latent runs: the VAE folder to decode with (default: the one the run names)")
    _add_sampler_args(s)
    s.add_argument("--start", choices=["noise", "buffer"], default="noise",
                   help="where chains start: Gaussian noise, or the replay buffer of a cd run")  # fmt: skip
    s.add_argument("--class", dest="label", type=int, help="class to generate (conditional runs)")
    s.add_argument(
        "--random-classes",
        action="store_true",
        help="conditional runs: sample i of class drawn uniformly from stream SEED+i (FID on ImageNet)",
    )
    s.add_argument("--cfg", type=float, help="classifier-free guidance weight (with --class; default 1)")
    _add_common_args(s)
    s.set_defaults(func=_cmd_sample)

    io_help = ".npy (data coordinates), .npz (ADM uint8 images) or a directory of PNGs"
    dn = sub.add_parser("denoise", help="restore noisy inputs by descending the learned landscape")
    dn.add_argument("run_dir")
    dn.add_argument("--input", required=True, help="noisy inputs: " + io_help)
    dn.add_argument("--out", required=True, help="restored inputs: " + io_help)
    dn.add_argument(
        "--noise-std",
        type=_nonneg_float,
        help="the inputs' noise std in data units (needed by fm and the drl/cdrl recovery sampler)",
    )
    _add_sampler_args(dn)
    _add_task_args(dn)
    dn.set_defaults(func=_cmd_denoise)

    ip = sub.add_parser("inpaint", help="complete inputs where a mask is 0, holding the entries where it is 1")
    ip.add_argument("run_dir")
    ip.add_argument("--input", required=True, help="inputs: " + io_help)
    ip.add_argument(
        "--mask", required=True, help=".npy of 0/1 (1: known), the shape of one input or of all, in the inputs' layout"
    )
    ip.add_argument("--out", required=True, help="completions, input-major: " + io_help)
    ip.add_argument("--completions", type=_positive_int, default=1, help="completions per input")
    ip.add_argument("--class", dest="label", type=int, help="complete as this class (conditional runs)")
    ip.add_argument("--cfg", type=float, help="classifier-free guidance weight (with --class; default 1)")
    ip.add_argument(
        "--rounds",
        type=_positive_int,
        help="eqm/eqm-e/cd: descents, the filled part re-noised between them (default 10)",
    )
    ip.add_argument(
        "--renoise",
        type=_positive_float,
        default=0.5,
        help="noise fraction r of each re-noising, (1-r) x + r eps, in (0, 1]",
    )
    _add_sampler_args(ip)
    _add_task_args(ip)
    ip.set_defaults(func=_cmd_inpaint)

    od = sub.add_parser("ood", help="out-of-distribution scores (energy or field norm) and AUROC/AUPR/FPR@95")
    od.add_argument("run_dir")
    od.add_argument("--in", dest="in_path", required=True, help="in-distribution inputs: " + io_help)
    od.add_argument("--ood", help="out-of-distribution inputs (without it: scores of --in only)")
    od.add_argument(
        "--score",
        choices=["energy", "field-norm"],
        help="default: energy when the method has one, else the RMS of the field",
    )
    od.add_argument("--level", type=int, default=0, help="drl/cdrl: the noise level whose energy scores")
    od.add_argument("--scores", help=".npz to write the scores to (arrays 'in' and 'ood')")
    od.add_argument("--png", help="PNG histogram of the scores")
    _add_common_args(od)
    od.set_defaults(func=_cmd_ood)

    cp = sub.add_parser("compose", help="sample a product of experts: the weighted sum of runs' fields/energies")
    cp.add_argument("experts", nargs="+", metavar="RUN[:CLASS]", help="runs, each optionally with a class")
    cp.add_argument(
        "--weights",
        type=float,
        nargs="+",
        help="one weight per expert (default 1 each); the classes of one run compose as guidance: "
        "f(none) + sum_i w_i (f(c_i) - f(none))",
    )
    cp.add_argument("--n", type=_positive_int, required=True, help="number of samples")
    cp.add_argument("--out", required=True, help="samples: " + io_help)
    _add_sampler_args(cp)
    _add_task_args(cp)
    cp.set_defaults(func=_cmd_compose)

    tr = sub.add_parser("translate", help="turn real inputs into another class (partial noise, guided descent)")
    tr.add_argument("run_dir")
    tr.add_argument("--input", required=True, help="inputs: " + io_help)
    tr.add_argument("--class", dest="label", type=int, required=True, help="the target class")
    tr.add_argument("--out", required=True, help="translations: " + io_help)
    tr.add_argument(
        "--strength",
        type=float,
        default=0.5,
        help="noise fraction s of the start (1-s) x + s eps, in (0, 1); default 0.5",
    )
    tr.add_argument("--cfg", type=float, help="classifier-free guidance weight (default 1)")
    _add_sampler_args(tr)
    _add_task_args(tr)
    tr.set_defaults(func=_cmd_translate)

    e = sub.add_parser("eval", help="print sample-quality metrics as one JSON object")
    e.add_argument("samples", help="samples (.npy, .npz or a directory of PNGs)")
    e.add_argument("--data", required=True, help="reference data set (built-in name or path)")
    e.add_argument("--class", dest="label", type=int, help="requested class: report class accuracy (digits)")
    e.add_argument("--n-ref", type=_positive_int, help="number of reference points (default: all / 10,000)")
    e.set_defaults(func=_cmd_eval)

    pl = sub.add_parser("plot", help="2-D: samples and learned landscape; images: a sample grid")
    pl.add_argument("run_dir")
    pl.add_argument("--out", required=True, help="PNG file")
    pl.add_argument("--n", type=_positive_int, default=2000)
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--overwrite", action="store_true")
    pl.set_defaults(func=_cmd_plot)

    m = sub.add_parser("models", help="list the registered networks with their parameter counts")
    m.add_argument("--channels", type=_positive_int, default=4, help="input channels (default 4: SD-VAE latents)")
    m.add_argument("--image-size", type=_positive_int, default=32, help="input height = width (default 32)")
    m.add_argument("--classes", type=int, default=1000, help="number of classes (default 1000)")
    m.set_defaults(func=_cmd_models)

    en = sub.add_parser("encode", help="centre-crop an image folder and cache its VAE latents (latent mode)")
    en.add_argument("data", help="image folder (one subfolder per class, or images directly)")
    en.add_argument("--vae", required=True, help="local AutoencoderKL folder (e.g. a copy of sd-vae-ft-ema)")
    en.add_argument("--out", required=True, help="new latent directory (train with --data OUT)")
    en.add_argument("--image-size", type=_positive_int, default=256, help="crop size in pixels (default 256)")
    en.add_argument("--flip", action="store_true", help="also encode every image mirrored (flip augmentation)")
    en.add_argument("--batch-size", type=_positive_int, default=32)
    en.add_argument("--device", default="cpu")
    en.set_defaults(func=_cmd_encode)

    cv = sub.add_parser("convert", help="import a checkpoint of the reference EqM repository as a run directory")
    cv.add_argument("checkpoint", help="the reference's .pt (read weights-only: no pickled code runs)")
    cv.add_argument("--out", required=True, help="new run directory")
    cv.add_argument("--which", choices=["ema", "model"], default="ema", help="which weights (default ema)")
    cv.add_argument("--energy", choices=["dot", "l2"], help="the checkpoint was trained with --ebm (EqM-E)")
    cv.add_argument("--vae", help="local AutoencoderKL folder that sampling decodes with (else pass it to sample)")
    cv.set_defaults(func=_cmd_convert)

    fd = sub.add_parser("fid", help="FID, Inception Score, precision/recall with Inception weights from a local file")
    fd.add_argument("samples", help="images: an ADM .npz (arr_0, uint8 N x H x W x 3) or a folder of PNGs")
    fd.add_argument("--inception", required=True, help="TorchScript Inception (inception-2015-12-05.pt)")
    fd.add_argument("--ref", help="reference: a statistics .npz (mu, sigma) or images as for SAMPLES")
    fd.add_argument("--save-stats", help="write SAMPLES' statistics (mu, sigma, features) to this .npz instead")
    fd.add_argument("--splits", type=_positive_int, default=10, help="Inception Score splits (default 10)")
    fd.add_argument("--batch-size", type=_positive_int, default=100)
    fd.add_argument("--device", default="cpu")
    fd.add_argument("--overwrite", action="store_true")
    fd.set_defaults(func=_cmd_fid)

    d = sub.add_parser("demo", help="train EqM on checkerboard, sample, evaluate and plot (1-2 min on CPU)")
    d.add_argument("--out", default=None, help="directory (default: a new energen-demo* folder here)")
    d.add_argument("--steps", type=_positive_int, default=4000)
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except EnergenError as e:
        print(f"energen {a.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"energen {a.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
