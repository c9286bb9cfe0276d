"""Import a checkpoint of the reference EqM repository (``raywang4/EqM``) as an energen run directory.

The reference's ``train.py`` saves ``torch.save({"model": ..., "ema": ..., "opt": ..., "args": ...})``
(``args`` an ``argparse.Namespace``) with SiT/DiT module names (``x_embedder.proj``, ``t_embedder.mlp``,
``y_embedder.embedding_table``, ``blocks.N.attn``, ``blocks.N.mlp.fc1``, ``blocks.N.adaLN_modulation.1``,
``final_layer.linear``, ``pos_embed``). The file is read with ``torch.load(weights_only=True)``, with
``argparse.Namespace`` the one class allowed besides tensors and containers: no pickled code runs.

The architecture is read off the tensor shapes (width, depth, patch, channels, input size, classes, whether the
output has the discarded "sigma" half), so any size converts; only the number of attention heads is invisible
in the shapes: it comes from ``num_heads``, else from ``args.model`` (a reference preset), else from the preset of
that depth and width. ``args.ebm`` says whether the checkpoint is EqM-E (``dot``, ``l2``; ``mean`` is the
reference's alias of ``dot``). Conversion maps the names onto :class:`energen.networks.transformer.DiT`, checks
that the fixed position table is the sin-cos table this module computes, and drops the sigma half.

The run samples as the reference's ``sample_gd.py`` does by default: 249 updates (its "250 steps"), no
adaptive stopping, no noise; B-size models by gradient descent at eta = 0.003 (the paper's EqM-B/2 result), all
others by Nesterov GD at eta = 0.0017, mu = 0.3 (EqM-XL/2); guidance by the reference's rule (channels 0-2, only
for w > 1; see :class:`energen.fields.GuidedField`).
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import torch

from .config import TrainConfig
from .data.info import DataInfo
from .data.latents import LATENT_SCALE
from .errors import CheckpointError
from .networks.transformer import SIZES, model_name, sincos_2d
from .samplers.gradient_descent import GDSettings
from .samplers.nesterov import NAGSettings
from .samplers.settings import SamplerSettings
from .training.checkpoint import save_export
from .utils import atomic_write_json

REFERENCE_UPDATES = 249  # sample_gd.py's default --num-sampling-steps 250 runs range(250 - 1)
ENERGIES = {"none": None, "dot": "dot", "mean": "dot", "l2": "l2"}  # args.ebm -> energen's --energy


def reference_sampler(model: str) -> SamplerSettings:
    """The reference's sampler for a model: GD at eta 0.003 for B sizes, NAG-GD at 0.0017, mu 0.3 otherwise."""
    if model.startswith("EqM-B/"):
        return GDSettings(steps=REFERENCE_UPDATES, step_size=0.003)
    return NAGSettings(steps=REFERENCE_UPDATES, step_size=0.0017, momentum=0.3)


def read_reference(path: str | Path, which: str = "ema") -> tuple[dict[str, torch.Tensor], argparse.Namespace | None]:
    """The state dict ``which`` ("ema" or "model") of a reference checkpoint (or the file's own state dict if it
    is a bare one), and the checkpoint's ``args`` (``None`` when it has none)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as e:  # noqa: BLE001 - unpickling raises many types
        raise CheckpointError(f"{path}: not a weights-only torch checkpoint: {str(e).splitlines()[0]}") from None
    args = obj.get("args") if isinstance(obj, dict) else None
    if args is not None and not isinstance(args, argparse.Namespace):
        raise CheckpointError(f"{path}: 'args' is a {type(args).__name__}, not the reference's argparse.Namespace")
    if isinstance(obj, dict) and which in obj and isinstance(obj[which], dict):
        obj = obj[which]
    elif isinstance(obj, dict) and ("ema" in obj or "model" in obj):
        raise CheckpointError(f"{path}: has no {which!r} state dict (it has {', '.join(map(str, obj))})")
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors or a dict with 'ema'/'model'")
    return {k.removeprefix("module."): v for k, v in obj.items()}, args


def _heads(depth: int, dim: int, num_heads: int | None, args: argparse.Namespace | None) -> int:
    named = re.fullmatch(r"EqM-(S|B|L|XL)/\d+", str(getattr(args, "model", "")))
    if num_heads is not None:
        heads = num_heads
    elif named and SIZES[named[1]][:2] == (depth, dim):  # args.model is trusted only where the shapes agree
        heads = SIZES[named[1]][2]
    elif preset := next((h for d, w, h in SIZES.values() if (d, w) == (depth, dim)), None):
        heads = preset
    else:
        raise CheckpointError(f"the shapes do not tell the attention heads of a depth-{depth}, width-{dim} "
                              "transformer (no reference preset has that size); pass --num-heads")  # fmt: skip
    if heads < 1 or dim % heads:
        raise CheckpointError(f"{heads} heads do not divide the width {dim}")
    return heads


def reference_architecture(sd: dict[str, torch.Tensor], *, num_heads: int | None = None,
                           args: argparse.Namespace | None = None) -> dict:  # fmt: skip
    """Size, heads, patch, channels, image size, classes and the sigma half of a reference state dict, read off
    its shapes (``num_heads`` and ``args`` tell the heads, which the shapes cannot)."""
    try:
        w = sd["x_embedder.proj.weight"]
        dim, channels, patch = w.shape[0], w.shape[1], w.shape[2]
        depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
        tokens = sd["pos_embed"].shape[1]
        out = sd["final_layer.linear.weight"].shape[0] // (patch * patch)
    except (KeyError, ValueError, IndexError):
        raise CheckpointError("not a SiT/DiT state dict (x_embedder, blocks, pos_embed, final_layer)") from None
    if out not in (channels, 2 * channels):
        raise CheckpointError(f"the output layer gives {out} channels per pixel for {channels} input channels")
    heads = _heads(depth, dim, num_heads, args)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise CheckpointError(f"pos_embed has {tokens} tokens, not a square grid")
    table = sd.get("y_embedder.embedding_table.weight")
    rows = 0 if table is None else table.shape[0]
    classes = getattr(args, "num_classes", None)
    if classes is None or rows not in (classes, classes + 1):
        classes = max(rows - 1, 0)  # the null label of classifier-free guidance is the last row
    return {"model": model_name(depth, dim, heads, patch), "depth": depth, "width": dim, "heads": heads,
            "channels": channels, "patch": patch, "image": grid * patch, "sigma": out == 2 * channels,
            "num_classes": int(classes)}  # fmt: skip


def convert_state(sd: dict[str, torch.Tensor], *, num_heads: int | None = None,
                  args: argparse.Namespace | None = None) -> tuple[dict[str, torch.Tensor], dict]:  # fmt: skip
    """A reference state dict -> (energen DiT state dict, architecture)."""
    arch = reference_architecture(sd, num_heads=num_heads, args=args)
    expected = sincos_2d(sd["pos_embed"].shape[-1], arch["image"] // arch["patch"])
    if not torch.allclose(sd["pos_embed"].reshape(expected.shape).float(), expected, atol=1e-5):
        raise CheckpointError("the checkpoint's pos_embed is not the fixed 2-D sin-cos table of SiT/DiT")
    names = {"x_embedder.proj.": "patch_embed.", "t_embedder.mlp.": "time.mlp.",
             "y_embedder.embedding_table.": "label.", "final_layer.linear.": "final.linear.",
             "final_layer.adaLN_modulation.": "final.ada.", ".adaLN_modulation.": ".ada.",
             ".mlp.fc1.": ".mlp.0.", ".mlp.fc2.": ".mlp.2."}  # fmt: skip
    out = {}
    for key, value in sd.items():
        if key == "pos_embed":
            continue
        new = key
        for old, rep in names.items():
            new = new.replace(old, rep)
        out[new] = value.float()
    if arch["sigma"]:  # rows are ordered (p, q, channel); keep the first C of each patch position's 2C
        c, p = arch["channels"], arch["patch"]
        keep = torch.arange(p * p * 2 * c).reshape(p * p, 2 * c)[:, :c].reshape(-1)
        out["final.linear.weight"] = out["final.linear.weight"][keep]
        out["final.linear.bias"] = out["final.linear.bias"][keep]
    return out, arch


def convert(path: str | Path, run_dir: str | Path, *, which: str = "ema", energy: str | None = None,
            num_heads: int | None = None, latent_scale: float = LATENT_SCALE,
            vae: str | None = None) -> dict:  # fmt: skip
    """Write a sampling-ready run directory (config, data, model, sampler) from a reference checkpoint.

    ``energy``: ``"none"`` for EqM's implicit field, ``"dot"``/``"l2"`` for EqM-E; ``None`` reads the checkpoint's
    ``args.ebm`` (implicit when it has no ``args``). ``num_heads``: the attention heads, for sizes without a
    reference preset. The run's data are the model's latents (the reference multiplies SD-VAE latents by
    ``latent_scale``); ``vae`` (a local AutoencoderKL folder) is what image output decodes them with. Returns the
    architecture read off the checkpoint, with the energy and the sampler chosen.
    """
    from .methods import METHODS
    from .networks.energy import ExplicitEnergy

    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise CheckpointError(f"{run_dir} exists and is not empty; choose another --out")
    sd, args = read_reference(path, which)
    if args is not None and getattr(args, "uncond", True) is False:
        raise CheckpointError(f"{path}: trained with --uncond False (a time-conditioned EqM); only time-free "
                              "checkpoints convert")  # fmt: skip
    if energy is None:
        ebm = str(getattr(args, "ebm", "none"))
        if ebm not in ENERGIES:
            raise CheckpointError(f"{path}: args.ebm {ebm!r} is none of {', '.join(ENERGIES)}")
        energy = ENERGIES[ebm]
    elif energy not in ENERGIES:
        raise CheckpointError(f"energy {energy!r} is none of {', '.join(ENERGIES)}")
    else:
        energy = ENERGIES[energy]
    state, arch = convert_state(sd, num_heads=num_heads, args=args)
    steps = int(Path(path).stem) if Path(path).stem.isdigit() else 1  # the reference names files by step
    cfg = TrainConfig(method="eqm" if energy is None else "eqm-e", energy=energy or "dot", data=str(path),
                      model=arch["model"], conditional=arch["num_classes"] > 0, steps=max(steps, 1),
                      batch_size=256, lr=1e-4, adam_beta1=0.9, c_a=0.8, gamma_power=1.0,
                      dispersive=0.5 if getattr(args, "disp", False) else 0.0).validate()  # fmt: skip
    shape = (arch["channels"], arch["image"], arch["image"])
    info = DataInfo(name=f"latents of {Path(path).name}", kind="image", shape=shape, layout="nchw",
                    num_classes=arch["num_classes"], shift=[0.0], scale=[1.0 / latent_scale],
                    lo=-1e4, hi=1e4, decoder={"vae": None if vae is None else str(Path(vae).resolve()),
                                              "latent_scale": latent_scale})  # fmt: skip
    model = METHODS.get(cfg.method).build_model(cfg, shape, arch["num_classes"])
    try:
        model.load_state_dict({("net." + k if isinstance(model, ExplicitEnergy) else k): v for k, v in state.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit {arch['model']}: {str(e).splitlines()[0]}") from None
    sampler = reference_sampler(arch["model"])
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", cfg.to_json())
    atomic_write_json(run_dir / "data.json", info.to_json())
    atomic_write_json(run_dir / "sampler.json", sampler.to_json())
    save_export(run_dir, model.state_dict(), 0)
    return arch | {"energy": energy or "none", "sampler": sampler.to_json()}
