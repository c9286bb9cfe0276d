"""Import a checkpoint of the reference EqM repository (``raywang4/EqM``) as an energen run directory.

The reference saves ``torch.save({"model": ..., "ema": ..., "opt": ..., "args": ...})`` with SiT/DiT
module names (``x_embedder.proj``, ``t_embedder.mlp``, ``y_embedder.embedding_table``, ``blocks.N.attn``,
``blocks.N.mlp.fc1``, ``blocks.N.adaLN_modulation.1``, ``final_layer.linear``, ``pos_embed``). The file is
read with ``torch.load(weights_only=True)``: tensors, containers and ``argparse.Namespace`` only, never
pickled code.

Conversion maps the names onto :class:`energen.transformer.DiT`, checks that the fixed position table is
the sin-cos table this module computes, and drops the discarded "sigma" half of the output channels
(the reference's ``learn_sigma``). The model size is read off the shapes (depth, width, patch); the run
gets EqM's reference sampler (NAG-GD, 250 steps, step size 0.0017, momentum 0.3).
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
from .networks.transformer import SIZES, sincos_2d
from .samplers.nesterov import NAGSettings
from .training.checkpoint import save_export
from .utils import atomic_write_json

REFERENCE_SAMPLER = NAGSettings(steps=250, step_size=0.0017, momentum=0.3)


def read_reference(path: str | Path, which: str = "ema") -> dict[str, torch.Tensor]:
    """The state dict ``which`` ("ema" or "model") of a reference checkpoint, or the file's own state dict
    if it is a bare one."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as e:  # noqa: BLE001 - unpickling raises many types
        raise CheckpointError(f"{path}: not a weights-only torch checkpoint: {str(e).splitlines()[0]}") from None
    if isinstance(obj, dict) and which in obj and isinstance(obj[which], dict):
        obj = obj[which]
    elif isinstance(obj, dict) and ("ema" in obj or "model" in obj):
        raise CheckpointError(f"{path}: has no {which!r} state dict (it has {', '.join(map(str, obj))})")
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors or a dict with 'ema'/'model'")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def reference_architecture(sd: dict[str, torch.Tensor]) -> dict:
    """Size, patch, channels, image size and classes of a reference state dict, read off its shapes."""
    try:
        w = sd["x_embedder.proj.weight"]
        dim, channels, patch = w.shape[0], w.shape[1], w.shape[2]
        depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
        tokens = sd["pos_embed"].shape[1]
        out = sd["final_layer.linear.weight"].shape[0] // (patch * patch)
    except (KeyError, ValueError, IndexError):
        raise CheckpointError("not a SiT/DiT state dict (x_embedder, blocks, pos_embed, final_layer)") from None
    size = next((s for s, (d, h, _) in SIZES.items() if (d, h) == (depth, dim)), None)
    if size is None:
        raise CheckpointError(f"depth {depth} and width {dim} match no EqM size ({', '.join(SIZES)})")
    grid = math.isqrt(tokens)
    table = sd.get("y_embedder.embedding_table.weight")
    return {"model": f"EqM-{size}/{patch}", "depth": depth, "channels": channels, "patch": patch,
            "image": grid * patch, "sigma": out == 2 * channels,
            "num_classes": 0 if table is None else table.shape[0] - 1}  # fmt: skip


def convert_state(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """A reference state dict -> (energen DiT state dict, architecture)."""
    arch = reference_architecture(sd)
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
            latent_scale: float = LATENT_SCALE, vae: str | None = None) -> dict:  # fmt: skip
    """Write a sampling-ready run directory (config, data, model, sampler) from a reference checkpoint.

    ``energy``: None for EqM's implicit field, or "dot"/"l2" for a checkpoint trained with ``--ebm``.
    The run's data are the model's latents (the reference multiplies SD-VAE latents by ``latent_scale``);
    ``vae`` (a local AutoencoderKL folder) is what image output decodes them with. Returns the
    architecture read off the checkpoint.
    """
    from .methods import METHODS
    from .networks.energy import ExplicitEnergy

    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise CheckpointError(f"{run_dir} exists and is not empty; choose another --out")
    state, arch = convert_state(read_reference(path, which))
    steps = int(Path(path).stem) if Path(path).stem.isdigit() else 1  # the reference names files by step
    cfg = TrainConfig(method="eqm" if energy is None else "eqm-e", energy=energy or "dot", data=str(path),
                      model=arch["model"], conditional=arch["num_classes"] > 0, steps=max(steps, 1),
                      batch_size=256, lr=1e-4, adam_beta1=0.9, c_a=0.8, gamma_power=1.0).validate()  # fmt: skip
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
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", cfg.to_json())
    atomic_write_json(run_dir / "data.json", info.to_json())
    atomic_write_json(run_dir / "sampler.json", REFERENCE_SAMPLER.to_json())
    save_export(run_dir, model.state_dict(), 0)
    return arch
