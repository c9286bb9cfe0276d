"""The other commands: eval, plot, models, encode, convert, fid, calibrate, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError, DataError
from .options import check_new_output, positive_int


def register(sub) -> None:
    e = sub.add_parser("eval", help="print sample-quality metrics as one JSON object")
    e.add_argument("samples", help="samples (.npy, .npz or a directory of PNGs)")
    e.add_argument("--data", required=True, help="reference data set (built-in name or path)")
    e.add_argument("--class", dest="label", type=int, help="requested class: report class accuracy (digits)")
    e.add_argument("--n-ref", type=positive_int, help="number of reference points (default: all / 10,000)")
    e.set_defaults(func=_cmd_eval)

    pl = sub.add_parser("plot", help="2-D: samples and learned landscape; images: a sample grid")
    pl.add_argument("run_dir")
    pl.add_argument("--out", required=True, help="PNG file")
    pl.add_argument("--n", type=positive_int, default=2000)
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--overwrite", action="store_true")
    pl.set_defaults(func=_cmd_plot)

    m = sub.add_parser("models", help="list the registered networks with their parameter counts")
    m.add_argument("--channels", type=positive_int, default=4, help="input channels (default 4: SD-VAE latents)")
    m.add_argument("--image-size", type=positive_int, default=32, help="input height = width (default 32)")
    m.add_argument("--classes", type=int, default=1000, help="number of classes (default 1000)")
    m.set_defaults(func=_cmd_models)

    en = sub.add_parser("encode", help="centre-crop an image folder and cache its VAE posteriors (latent mode)")
    en.add_argument("data", help="image folder (one subfolder per class, or images directly)")
    en.add_argument("--vae", required=True, help="local AutoencoderKL folder (e.g. a copy of sd-vae-ft-ema)")
    en.add_argument("--out", required=True, help="new latent directory (train with --data OUT)")
    en.add_argument("--image-size", type=positive_int, default=256, help="crop size in pixels (default 256)")
    en.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                    help="storage of the posterior mean and std of each image and its mirror image (default "
                         "float32, as the reference; float16 halves the disk: ImageNet 84 GB -> 42 GB)")  # fmt: skip
    en.add_argument("--batch-size", type=positive_int, default=32)
    en.add_argument("--device", default="cpu")
    en.set_defaults(func=_cmd_encode)

    cv = sub.add_parser("convert", help="import a checkpoint of the reference EqM repository as a run directory")
    cv.add_argument("checkpoint", help="the reference's .pt (read weights-only: no pickled code runs)")
    cv.add_argument("--out", required=True, help="new run directory")
    cv.add_argument("--which", choices=["ema", "model"], default="ema", help="which weights (default ema)")
    cv.add_argument("--energy", choices=["none", "dot", "l2"],
                    help="EqM-E energy of the checkpoint (default: its args.ebm; none without args)")  # fmt: skip
    cv.add_argument(
        "--num-heads",
        type=positive_int,
        help="attention heads (default: the reference preset of args.model or of the depth and width)",
    )
    cv.add_argument("--vae", help="local AutoencoderKL folder that sampling decodes with (else pass it to sample)")
    cv.set_defaults(func=_cmd_convert)

    fd = sub.add_parser("fid", help="FID, Inception Score, precision/recall with Inception weights from a local file")
    fd.add_argument("samples", help="images: an ADM .npz (arr_0, uint8 N x H x W x 3) or a folder of PNGs")
    fd.add_argument("--inception", required=True, help="TorchScript Inception (inception-2015-12-05.pt)")
    fd.add_argument("--ref", help="reference: a statistics .npz (mu, sigma) or images as for SAMPLES")
    fd.add_argument("--save-stats", help="write SAMPLES' statistics (mu, sigma, features) to this .npz instead")
    fd.add_argument("--splits", type=positive_int, default=10, help="Inception Score splits (default 10)")
    fd.add_argument("--batch-size", type=positive_int, default=100)
    fd.add_argument("--device", default="cpu")
    fd.add_argument("--overwrite", action="store_true")
    fd.set_defaults(func=_cmd_fid)

    ca = sub.add_parser("calibrate", help="(re)choose an EqM run's default sampler budget on held-out data (after "
                        "a kill during training's calibration, or a run trained with --no-calibrate)")  # fmt: skip
    ca.add_argument("run_dir")
    ca.add_argument("--samples", type=positive_int,
                    help="held-out samples, >= 100 (default: the run's calibrate_samples)")  # fmt: skip
    ca.add_argument("--device", default="cpu")
    ca.set_defaults(func=_cmd_calibrate)

    d = sub.add_parser("demo", help="train EqM on checkerboard, sample, evaluate and plot (1-2 min on CPU)")
    d.add_argument("--out", default=None, help="directory (default: a new energen-demo* folder here)")
    d.add_argument("--steps", type=positive_int, default=4000)
    d.set_defaults(func=_cmd_demo)


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
    check_new_output(out, a.overwrite, (".png",), allow_dir=False)
    plot_run(Run(a.run_dir), out, n=a.n, seed=a.seed)
    print(json.dumps({"out": str(out)}))
    return 0


def _cmd_calibrate(a: argparse.Namespace) -> int:
    from ..evaluation.calibration import recalibrate

    s = recalibrate(a.run_dir, n=a.samples, device=a.device)
    cal = s.extra["calibration"]
    print(json.dumps({"out": str(Path(a.run_dir) / "sampler.json"),
                      "sampler": {k: v for k, v in s.to_json().items() if k not in ("extra", "format")},
                      "best": cal["best"], "w1": cal["grid"][cal["best"]]}))  # fmt: skip
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
        check_new_output(out, a.overwrite, (".npz",), allow_dir=False)
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

    meta = encode_folder(a.data, a.vae, a.out, image_size=a.image_size, dtype=a.dtype, device=a.device,
                         batch_size=a.batch_size)  # fmt: skip
    print(json.dumps({"out": a.out} | meta))
    return 0


def _cmd_convert(a: argparse.Namespace) -> int:
    from ..convert import convert

    arch = convert(a.checkpoint, a.out, which=a.which, energy=a.energy, num_heads=a.num_heads, vae=a.vae)
    s = arch["sampler"]
    print(f"{a.checkpoint} -> {a.out}: {arch['model']} ({arch['heads']} heads), energy {arch['energy']}, "
          f"{arch['num_classes']} classes, latents {arch['channels']}x{arch['image']}x{arch['image']}; sampler "
          f"{s['sampler']}, {s['steps']} steps of eta {s['step_size']}")  # fmt: skip
    return 0
