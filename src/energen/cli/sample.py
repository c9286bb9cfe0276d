"""``energen sample``: draw samples from a trained run (sharded over the processes of ``torchrun``)."""

from __future__ import annotations

import argparse
import json

from .options import add_common_args, positive_int
from .sampler_options import add_guidance_args, add_sampler_args, sampler_settings


def register(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n", type=positive_int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help=".npy (data coordinates), .npz (ADM uint8 images) or a directory")
    s.add_argument("--npz", help="with a directory --out: also gather its PNGs into this ADM .npz")
    s.add_argument("--vae", help="latent runs: the VAE folder to decode with (default: the one the run names)")
    add_sampler_args(s)
    s.add_argument("--start", default="noise", metavar="{noise,buffer,FILE}",
                   help="where chains start: Gaussian noise, the replay buffer of a cd run, or the points in FILE "
                   "(.npy, .npz or PNG folder in the data's coordinates and layout, as sample writes them; one per "
                   "sample)")  # fmt: skip
    s.add_argument("--class", dest="label", type=int, help="class to generate (conditional runs)")
    s.add_argument(
        "--random-classes",
        action="store_true",
        help="conditional runs: sample i of class drawn uniformly from stream SEED+i (FID on ImageNet)",
    )
    add_guidance_args(s, "classifier-free guidance weight (with --class or --random-classes; default 1)")
    add_common_args(s)
    s.set_defaults(func=_cmd_sample)


def _cmd_sample(a: argparse.Namespace) -> int:
    from ..generation import generate

    summary = generate(a.run_dir, a.n, a.out, settings=lambda run: sampler_settings(run, a), seed=a.seed,
                       label=a.label, random_classes=a.random_classes, cfg_scale=1.0 if a.cfg is None else a.cfg,
                       batch_size=a.batch_size, start=a.start, npz=a.npz, vae=a.vae, overwrite=a.overwrite,
                       device=a.device)  # fmt: skip
    if summary is not None:  # rank 0
        print(json.dumps(summary))
    return 0
