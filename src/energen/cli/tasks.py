"""The task commands on a trained run: denoise, inpaint, ood, compose, translate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .options import add_common_args, add_task_args, check_new_output, nonneg_float, positive_float, positive_int
from .sampler_options import add_guidance_args, add_sampler_args, sampler_settings


def register(sub) -> None:
    io_help = ".npy (data coordinates), .npz (ADM uint8 images) or a directory of PNGs"
    dn = sub.add_parser("denoise", help="restore noisy inputs by descending the learned landscape")
    dn.add_argument("run_dir")
    dn.add_argument("--input", required=True, help="noisy inputs: " + io_help)
    dn.add_argument("--out", required=True, help="restored inputs: " + io_help)
    dn.add_argument(
        "--noise-std",
        type=nonneg_float,
        help="the inputs' noise std in data units (needed by fm and the drl/cdrl recovery sampler)",
    )
    add_sampler_args(dn)
    add_task_args(dn)
    dn.set_defaults(func=_cmd_denoise)

    ip = sub.add_parser("inpaint", help="complete inputs where a mask is 0, holding the entries where it is 1")
    ip.add_argument("run_dir")
    ip.add_argument("--input", required=True, help="inputs: " + io_help)
    ip.add_argument(
        "--mask", required=True, help=".npy of 0/1 (1: known), the shape of one input or of all, in the inputs' layout"
    )
    ip.add_argument("--out", required=True, help="completions, input-major: " + io_help)
    ip.add_argument("--completions", type=positive_int, default=1, help="completions per input")
    ip.add_argument("--class", dest="label", type=int, help="complete as this class (conditional runs)")
    add_guidance_args(ip, "classifier-free guidance weight (with --class; default 1)")
    ip.add_argument(
        "--rounds",
        type=positive_int,
        help="eqm/eqm-e/cd: descents, the filled part re-noised between them (default 10)",
    )
    ip.add_argument(
        "--renoise",
        type=positive_float,
        default=0.5,
        help="noise fraction r of each re-noising, (1-r) x + r eps, in (0, 1]",
    )
    add_sampler_args(ip)
    add_task_args(ip)
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
    add_common_args(od)
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
    cp.add_argument("--n", type=positive_int, required=True, help="number of samples")
    cp.add_argument("--out", required=True, help="samples: " + io_help)
    add_sampler_args(cp)
    add_task_args(cp)
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
    add_guidance_args(tr, "classifier-free guidance weight (default 1)")
    add_sampler_args(tr)
    add_task_args(tr)
    tr.set_defaults(func=_cmd_translate)


def _write(x, info, out: Path, overwrite: bool) -> None:
    from ..data.samples import write_samples

    if out.suffix == "" and out.exists() and overwrite:
        for f in out.glob("*.png"):
            f.unlink()
    write_samples(x, info, out)


def _read_input(path: str, info, what: str):
    from ..data.samples import read_samples

    x = read_samples(path, info)
    if len(x) == 0:
        raise ConfigError(f"{what} {path!r} holds no samples")
    return x


def _new_png(a: argparse.Namespace) -> Path | None:
    png = None if a.png is None else Path(a.png)
    if png is not None:
        check_new_output(png, a.overwrite, (".png",), allow_dir=False)
    return png


def _task_outputs(a: argparse.Namespace) -> tuple[Path, Path | None]:
    out = Path(a.out)
    check_new_output(out, a.overwrite, (".npy", ".npz"), allow_dir=True)
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
    settings = sampler_settings(run, a, base=restoring_settings(run.default_sampler))
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
    settings = sampler_settings(run, a)
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
    settings = sampler_settings(run, a)
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
    settings = sampler_settings(run, a, base=default_settings(run))
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
        check_new_output(scores_out, a.overwrite, (".npz",), allow_dir=False)
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
