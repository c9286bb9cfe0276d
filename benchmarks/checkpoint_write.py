"""Checkpoint write cost: energen's ``save_tensors`` against ``safetensors.torch.save_file``.

For a random state dict of about ``--mb`` megabytes (float32 and bfloat16 tensors of a transformer's
sizes) each method runs in a fresh subprocess, which reports the peak extra resident memory of the write
(``VmHWM`` from ``/proc/self/status``, reset through ``/proc/self/clear_refs`` where allowed; psutil is
not needed) and the median seconds over ``--repeats`` writes. ``save_file`` does not fsync, so it is also
timed followed by an fsync, which is what energen's atomic write does. ``legacy`` is the previous implementation
(clone every tensor, build the file in memory, write it atomically), kept here for comparison.

With ``--model NAME`` (e.g. ``EqM-S/2``) the state is instead a real resume state, built as training builds
it: the registered model for method ``eqm`` on random 4 x 32 x 32 latents with 1,000 classes, its EMA and
AdamW after one optimiser step. ``energen`` then writes it with the training loop's ``save_resume`` (the
tensor file and ``resume.json``); the other methods write the same tensors as one safetensors file.

    python benchmarks/checkpoint_write.py [--mb 400] [--repeats 3] [--dir DIR]
    python benchmarks/checkpoint_write.py --model EqM-S/2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("safetensors", "safetensors+fsync", "energen", "legacy")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _state(mb: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    width, state, total, i = 1024, {}, 0, 0
    while total < mb * 2**20:
        dtype = torch.bfloat16 if i % 4 == 3 else torch.float32
        shape = (4 * width, width) if i % 2 == 0 else (width, width)
        t = torch.empty(shape, dtype=dtype)
        t.normal_(generator=g)
        state[f"blocks.{i}.weight"] = t
        state[f"blocks.{i}.bias"] = torch.zeros(shape[0], dtype=dtype)
        total += t.nbytes + shape[0] * t.element_size()
        i += 1
    return state


def _resume_state(model: str, batch_size: int = 8):
    """The resume state of ``model`` (method eqm, 4 x 32 x 32 latents, 1,000 classes) after one training step,
    composed as ``energen.training.loop.train`` composes it; returns the ``ResumeState`` and its tensors as
    ``save_resume`` writes them."""
    import numpy as np
    import torch

    from energen import TrainConfig
    from energen.data.datasets import array_dataset
    from energen.methods import METHODS
    from energen.training.checkpoint import ResumeState, _prefixed, flatten_optimizer
    from energen.training.ema import EMA
    from energen.training.loop import resolve_config

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 32, 32)).astype(np.float32)
    y = np.linspace(0, 999, 16).astype(np.int64)  # ImageNet's 1,000 classes: the label table has its full size
    dataset = array_dataset(x, y, "latents")
    cfg = TrainConfig(method="eqm", data="latents", model=model, conditional=True, batch_size=batch_size,
                      calibrate=False, warmup_samples=0)  # fmt: skip
    cfg = resolve_config(cfg, dataset.info)
    method, classes = METHODS.get(cfg.method), dataset.info.num_classes
    torch.manual_seed(cfg.seed)
    net = method.build_model(cfg, dataset.info.shape, classes)
    objective = method.objective(cfg, classes, dataset.info)
    ema = EMA(net, halflife_samples=cfg.ema_halflife_samples, rampup=cfg.ema_rampup)
    groups = method.param_groups(net, cfg)
    for g in groups:
        g.pop("name")
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    xb, yb = dataset.batch(0, cfg.batch_size, gen)
    loss = objective(net, xb, yb, gen).per_sample.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()  # the gradients stay allocated, as they are when training writes a checkpoint
    opt.step()
    ema.update(net, batch=cfg.batch_size, samples_seen=cfg.batch_size)
    state = ResumeState(step=1, model=net.state_dict(), ema=ema.state_dict(), optimizer=opt.state_dict(),
                        rng={"generator.0": gen.get_state()}, extra={},
                        objective=getattr(objective, "state_dict", dict)())  # fmt: skip
    tensors = (_prefixed("model", state.model) | _prefixed("ema", state.ema) | flatten_optimizer(state.optimizer)[0]
               | _prefixed("rng", state.rng) | _prefixed("objective", state.objective))  # fmt: skip
    return state, tensors, net, ema, opt  # the objects stay alive, as in training


def _child(method: str, mb: int, repeats: int, directory: str, model: str | None = None) -> dict:
    import torch  # noqa: F401 - imported before the baseline
    from safetensors.torch import save, save_file

    from energen.training.checkpoint import save_resume, save_tensors
    from energen.utils import atomic_write_bytes

    def legacy(path, tensors, metadata=None):
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        atomic_write_bytes(path, save(tensors, metadata=metadata))

    def save_file_fsync(path, tensors, metadata=None):
        save_file(tensors, str(path), metadata=metadata)
        fd = os.open(path, os.O_RDWR)
        os.fsync(fd)
        os.close(fd)

    write = {
        "safetensors": lambda p, t, m: save_file(t, str(p), metadata=m),
        "safetensors+fsync": save_file_fsync,
        "energen": save_tensors,
        "legacy": legacy,
    }[method]
    path, params = Path(directory) / f"{method}.safetensors", 0
    if model is None:
        state = _state(mb)
        meta = {"format": "energen-bench", "step": "0"}
    else:
        resume, state, *alive = _resume_state(model)
        params = sum(p.numel() for p in alive[0].parameters())
        meta = {"format": "energen-resume", "step": str(resume.step)}
        if method == "energen":  # the training loop's writer: tensor file, then resume.json
            path = Path(directory) / method / f"resume-{resume.step:09d}.safetensors"
            path.parent.mkdir()
            write = lambda p, t, m: save_resume(p.parent, resume)  # noqa: E731
    gc.collect()
    nbytes = sum(t.nbytes for t in state.values())
    times, extra = [], []
    for _ in range(repeats):
        reset = _reset_peak()
        base = _status_kb("VmRSS") if reset else _status_kb("VmHWM")
        t0 = time.perf_counter()
        write(path, state, meta)
        times.append(time.perf_counter() - t0)
        extra.append((_status_kb("VmHWM") - base) / 1024)
        file_mb = path.stat().st_size / 2**20
        path.unlink()
    return {"method": method, "state_mb": nbytes / 2**20, "file_mb": file_mb, "tensors": len(state), "params": params,
            "seconds": statistics.median(times), "extra_mb": max(extra), "first_extra_mb": extra[0],
            "peak_reset": reset}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--model", default=None, help="write the resume state of this registered model (eqm), e.g. EqM-S/2")
    ap.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.mb, args.repeats, args.dir, args.model)))
        return
    directory = tempfile.mkdtemp(prefix="energen-ckpt-bench-", dir=args.dir)
    try:
        rows = {}
        for method in METHODS:
            cmd = [sys.executable, __file__, "--child", method, "--mb", str(args.mb), "--repeats", str(args.repeats)]
            cmd += ["--model", args.model] if args.model else []
            out = subprocess.run(cmd + ["--dir", directory], check=True, capture_output=True, text=True, env=os.environ)
            rows[method] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ref, ref_sync = rows["safetensors"], rows["safetensors+fsync"]
    what = "synthetic state"
    if args.model:
        what = f"{args.model} resume state ({ref['params'] / 1e6:.1f}M parameters; model + EMA + AdamW after one step)"
    print(f"{what}: {ref['tensors']} tensors, {ref['state_mb']:.1f} MB ({ref['file_mb']:.1f} MB file); "
          f"median of {args.repeats} writes, peak extra RSS of a write")  # fmt: skip
    print(f"{'method':<19}{'extra MB':>9}{'RSS/state':>10}{'seconds':>9}{'RSS/safetensors':>17}"
          f"{'time/safetensors':>18}{'time/+fsync':>13}")  # fmt: skip
    for method, r in rows.items():
        x_rss = max(r["extra_mb"], 1.0) / max(ref["extra_mb"], 1.0)  # below 1 MB is noise
        x_t, x_sync = r["seconds"] / ref["seconds"], r["seconds"] / ref_sync["seconds"]
        x_state = r["extra_mb"] / r["state_mb"]
        print(f"{method:<19}{r['extra_mb']:>9.1f}{x_state:>10.3f}{r['seconds']:>9.2f}{x_rss:>17.2f}{x_t:>18.2f}"
              f"{x_sync:>13.2f}")  # fmt: skip
    if not ref["peak_reset"]:
        print("note: /proc/self/clear_refs not writable; extra RSS after the first write is a lower bound")


if __name__ == "__main__":
    main()
