"""Drawing samples from a run into files: ``.npy`` (data coordinates), an ADM ``.npz`` (uint8 images) or a
folder of PNGs (optionally gathered into an ADM ``.npz``), sharded over the processes of ``torchrun``.

:func:`generate` is what ``energen sample`` does; :func:`check_new_output` is the rule every command that writes
files follows: the path has a known suffix, does not exist yet (or ``overwrite``) and its folder exists and is
writable, all checked before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .run import Run
    from .samplers.settings import SamplerSettings


def check_new_output(out: Path, overwrite: bool, suffixes: tuple[str, ...], allow_dir: bool) -> None:
    """Refuse an output path of another kind than ``suffixes`` (or a directory, with ``allow_dir``), or one that
    exists (an empty directory aside) unless ``overwrite``."""
    if out.suffix not in suffixes and not (allow_dir and out.suffix == ""):
        kinds = ", ".join(suffixes) + (" or a directory" if allow_dir else "")
        raise ConfigError(f"--out {str(out)!r}: use {kinds}")
    if out.exists() and not overwrite and not (out.is_dir() and not any(out.iterdir())):
        raise ConfigError(f"--out {str(out)!r} already exists; choose another path (or pass --overwrite)")
    _check_writable_parent(out, allow_dir)


def _check_writable_parent(out: Path, allow_dir: bool) -> None:
    """Refuse, before any work, an output whose folder is missing, not a folder or not writable: a file's
    parent must exist; a directory output is created with its parents, so its nearest existing ancestor counts."""
    import os

    if allow_dir and out.suffix == "" and out.exists():
        folder = out
    elif allow_dir and out.suffix == "":
        folder = next((p for p in out.absolute().parents if p.exists()), Path("/"))
    else:
        folder = out.absolute().parent
        if not folder.exists():
            raise ConfigError(f"--out {str(out)!r}: folder {str(folder)!r} does not exist; create it first")
    if not folder.is_dir():
        raise ConfigError(f"--out {str(out)!r}: {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {str(out)!r}: folder {str(folder)!r} is not writable")


def generate(run_dir: str | Path, n: int, out: str | Path, *,
             settings: SamplerSettings | Callable[[Run], SamplerSettings] | None = None, seed: int = 0,
             label: int | None = None, random_classes: bool = False, cfg_scale: float = 1.0, batch_size: int = 1000,
             start: str = "noise", npz: str | Path | None = None, vae: str | None = None, overwrite: bool = False,
             device: str = "cpu") -> dict | None:  # fmt: skip
    """Draw ``n`` samples of the run in ``run_dir`` into ``out`` (``.npy``, ``.npz`` or a directory of PNGs).

    Under ``torchrun`` each process draws its share (sample ``i`` always from noise stream ``seed + i``, so the
    result does not depend on the number of processes) and rank 0 gathers; a directory is written by every
    process, PNG ``i`` by the process that drew it.

    Args:
        settings: the sampler, or a function of the loaded :class:`~energen.run.Run` giving it (None: the run's
            default sampler).
        label: the class of every sample (conditional runs).
        random_classes: sample ``i`` of a class drawn uniformly from the stream ``seed + i`` (conditional runs).
        cfg_scale: classifier-free guidance weight.
        start: ``"noise"``, ``"buffer"`` (cd runs: chains start from the replay buffer), or a file of ``n`` starts
            in the data's coordinates and layout (``.npy``, ``.npz`` or a PNG folder, as this function writes).
        npz: with a directory ``out``: also gather its PNGs into this ADM ``.npz``.
        vae: latent runs: the VAE folder to decode with (default: the one the run names).
        overwrite: replace existing outputs (PNGs in a directory ``out`` are removed first).
        device: ``"cpu"`` or ``"cuda"`` (under ``torchrun``: each process's local GPU).

    Returns:
        on rank 0, the summary: out, n, processes, sampler (settings as JSON), mean_steps, max_steps, nfe;
        ``None`` on the other ranks.
    """
    import torch

    from .data.samples import image_decoder, png_folder_to_npz, read_samples, write_samples
    from .run import Run
    from .training import distributed as dist

    out = Path(out)
    check_new_output(out, overwrite, (".npy", ".npz"), allow_dir=True)
    if npz is not None:
        if out.suffix:
            raise ConfigError("--npz goes with a directory --out (the PNGs it gathers)")
        check_new_output(Path(npz), overwrite, (".npz",), allow_dir=False)
    dev = torch.device(device)
    dist.init(dev)
    rank, world = dist.rank(), dist.world_size()
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", dist.local_rank())
    run = Run(run_dir, device=dev)
    if out.suffix != ".npy":
        image_decoder(run.info, vae)  # fails now, not after sampling
    chosen = settings(run) if callable(settings) else (settings or run.default_sampler)
    starts = start
    if start not in ("noise", "buffer"):
        starts = read_samples(start, run.info)
        if len(starts) != n:
            raise ConfigError(f"--start {str(start)!r} holds {len(starts)} starts for --n {n}")
    lo, hi = n * rank // world, n * (rank + 1) // world
    labels = label
    if random_classes:
        if label is not None or run.num_classes == 0:
            raise ConfigError("--random-classes needs a conditional run and no --class")
        labels = torch.tensor([torch.randint(run.num_classes, (1,), generator=torch.Generator().manual_seed(seed + i))
                               for i in range(lo, hi)])  # fmt: skip
    if dist.is_main() and out.suffix == "" and out.exists() and overwrite:
        for f in out.glob("*.png"):
            f.unlink()
    dist.barrier()  # every rank has checked its outputs before any writes
    x, o = run.sample(hi - lo, seed=seed + lo, settings=chosen, label=labels, cfg_scale=cfg_scale,
                      batch_size=batch_size, start=starts if isinstance(starts, str) else starts[lo:hi])  # fmt: skip
    if out.suffix == "":
        write_samples(x, run.info, out, first_index=lo, vae=vae, device=dev)
    parts = dist.gather_to_main((x.cpu() if out.suffix else None, o.steps.float().cpu(), o.nfe))
    summary = None
    if dist.is_main():
        if out.suffix:
            write_samples(torch.cat([p[0] for p in parts]), run.info, out, vae=vae, device=dev)
        if npz is not None:
            png_folder_to_npz(out, n, Path(npz))
        steps = torch.cat([p[1] for p in parts])
        summary = {"out": str(out), "n": n, "processes": world, "sampler": chosen.to_json(),
                   "mean_steps": float(steps.mean()), "max_steps": int(steps.max()),
                   "nfe": sum(p[2] for p in parts)}  # fmt: skip
    dist.barrier()
    return summary
