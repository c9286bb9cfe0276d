"""Pictures of a trained run.

- 2-D data: the learned landscape (EqM-E: contours of the energy; DRL/CDRL: the density exp(-E) of level 0; CD:
  the density exp(-E/T) at its chains' temperature;
  EqM: the RMS of the equilibrium field with its streamlines; flow matching: the velocity at t = 0.9) and,
  beside it, samples.
- Images: a grid of samples.

And the pictures of the tasks (denoise, inpaint, compose, translate: :func:`plot_panels`; ood:
:func:`plot_scores`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .data.images import to_uint8_images
from .run import Run

matplotlib.use("Agg")


def _save(fig, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)


def image_grid(x: np.ndarray, info, cols: int = 10) -> np.ndarray:
    """(N, C, H, W) data-coordinate images -> one uint8 (rows*H, cols*W, 3) grid with 1-pixel gaps."""
    u8 = to_uint8_images(x, info)
    n, h, w, _ = u8.shape
    rows = (n + cols - 1) // cols
    grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), 255, dtype=np.uint8)
    for i, im in enumerate(u8):
        r, c = divmod(i, cols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = im
    return grid


def plot_run(run: Run, out: str | Path, *, n: int = 2000, seed: int = 0) -> None:
    out = Path(out)
    info = run.info
    if info.kind == "image":
        x, _ = run.sample(min(n, 100), seed=seed)
        grid = image_grid(x.numpy(), info)
        scale = max(1, 400 // grid.shape[1])
        fig = plt.figure(figsize=(grid.shape[1] * scale / 100, grid.shape[0] * scale / 100), dpi=100)
        fig.figimage(np.kron(grid, np.ones((scale, scale, 1), dtype=np.uint8)))
        fig.savefig(out.with_name(f".{out.name}.tmp.png"), dpi=100)
        plt.close(fig)
        out.with_name(f".{out.name}.tmp.png").replace(out)
        return
    if info.shape != (2,):
        raise ValueError("plot supports 2-D vector data and images")
    x, _ = run.sample(n, seed=seed)
    lo, hi = float(info.lo), float(info.hi)
    pad = 0.1 * (hi - lo)
    g = np.linspace(lo - pad, hi + pad, 120)
    gx, gy = np.meshgrid(g, g)
    pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    z = info.normalize(pts)
    scale = torch.tensor(info.scale)
    temp = run.temperature
    density = run.method.models_density and temp > 0
    # a density run gets the energy beside its density: exp(-E) can put nearly all its mass in a few sharp wells
    # and hide the modes that E still has
    fig, axes = plt.subplots(1, 3 if density else 2, figsize=(16.5 if density else 11, 5))
    ax = axes[0]
    where = " at level 0" if run.default_sampler.walks_levels else ""
    if density:  # the grid-normalised density
        e = run.energy(pts).double()
        dens = torch.softmax(-e / temp, 0).reshape(gx.shape).numpy()
        ax.imshow(dens, extent=(g[0], g[-1], g[0], g[-1]), origin="lower", cmap="viridis")
        ax.set_title(f"{run.cfg.method}: learned density exp(-E{'' if temp == 1 else f' / {temp:.3g}'}){where}")
        _energy_panel(axes[1], gx, gy, e.reshape(gx.shape).numpy(), f"{run.cfg.method}: energy E(x){where}")
    elif run.has_energy:
        _energy_panel(ax, gx, gy, run.energy(pts).reshape(gx.shape).numpy(), f"{run.cfg.method}: energy E(x)")
    else:
        t = None if not run.learns_velocity else torch.full((len(z),), 0.9)
        with torch.no_grad():
            f = (run.field(z, t) * scale).numpy()  # displacement direction in data coordinates
        mag = np.sqrt((f**2).sum(1)).reshape(gx.shape)
        ax.imshow(np.log(mag + 1e-3), extent=(g[0], g[-1], g[0], g[-1]), origin="lower", cmap="viridis")
        ax.streamplot(gx, gy, f[:, 0].reshape(gx.shape), f[:, 1].reshape(gx.shape), color="w", density=1.0,
                      linewidth=0.5, arrowsize=0.6)  # fmt: skip
        what = "velocity at t=0.9" if run.learns_velocity else "log |equilibrium field| and its flow"
        ax.set_title(f"{run.cfg.method}: {what}")
    for ax in axes[:-1]:
        ax.set_xlim(g[0], g[-1])
        ax.set_ylim(g[0], g[-1])
        ax.set_aspect("equal")
    ax = axes[-1]
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.6, color="tab:red", label="samples")
    ax.set_xlim(g[0], g[-1])
    ax.set_ylim(g[0], g[-1])
    ax.set_aspect("equal")
    s = run.default_sampler
    how = f"{s.steps} Langevin steps per level" if s.walks_levels else f"{s.steps} steps, eta {s.step_size:.3g}"
    ax.set_title(f"{n} samples: {s.sampler}, {how}")
    _save(fig, out)


def _energy_panel(ax, gx: np.ndarray, gy: np.ndarray, e: np.ndarray, title: str) -> None:
    """Filled contours of an energy on a grid, shifted to a minimum of 0 (low: dark)."""
    ax.contourf(gx, gy, e - e.min(), levels=40, cmap="viridis")
    ax.set_title(title)


def plot_panels(panels: list[tuple[str, torch.Tensor, int]], info, out: str | Path, *, examples: int = 10) -> None:
    """Side by side: ``(title, x, k)`` panels, ``x`` in data coordinates holding ``k`` items per example.

    Images: one column per example (the first ``examples``), each panel's ``k`` items in ``k`` rows, the rows
    titled. 2-D: one scatter plot per panel, all on the same axes limits.
    """
    out = Path(out)
    if info.kind == "image":
        n = min(examples, min(len(x) // k for _, x, k in panels))
        rows, titles = [], []
        for title, x, k in panels:
            for j in range(k):
                rows.append(x[j : n * k : k])
                titles.append(title if j == 0 else "")
        grid = image_grid(torch.cat(rows).numpy(), info, cols=n)
        scale = max(2, 480 // grid.shape[1])
        fig, ax = plt.subplots(figsize=(grid.shape[1] * scale / 100 + 1.0, grid.shape[0] * scale / 100 + 0.2))
        ax.imshow(grid, interpolation="nearest")
        cell = grid.shape[0] / len(rows)
        ax.set_yticks([cell * (i + 0.5) for i in range(len(rows))], titles, fontsize=8)
        ax.set_xticks([])
        _save(fig, out)
        return
    if info.shape != (2,):
        raise ValueError("task pictures support 2-D vector data and images")
    allx = torch.cat([x for _, x, _ in panels])
    lo, hi = allx.min(0).values.numpy(), allx.max(0).values.numpy()
    pad = 0.05 * (hi - lo) + 1e-6
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, x, _) in zip(axes[0], panels, strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.6, color="tab:red")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
    _save(fig, out)


def plot_scores(scores_in: torch.Tensor, scores_ood: torch.Tensor | None, what: str, out: str | Path) -> None:
    """Histograms of OOD scores: in-distribution and (when given) out-of-distribution inputs."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sets = [("in-distribution", scores_in)] + ([] if scores_ood is None else [("OOD", scores_ood)])
    allv = torch.cat([v for _, v in sets]).numpy()
    bins = np.linspace(allv.min(), allv.max(), 50)
    for label, v in sets:
        ax.hist(v.numpy(), bins=bins, alpha=0.6, density=True, label=label)
    ax.set_xlabel(what)
    ax.legend()
    _save(fig, Path(out))
