"""Checkpoint write cost: energen's ``save_tensors`` against ``safetensors.torch.save_file``.

For a random state dict of about ``--mb`` megabytes (float32 and bfloat16 tensors of a transformer's
sizes) each method runs in a fresh subprocess, which reports the peak extra resident memory of the write
(``VmHWM`` from ``/proc/self/status``, reset through ``/proc/self/clear_refs`` where allowed; psutil is
not needed) and the median seconds over ``--repeats`` writes. ``save_file`` does not fsync, so it is also
timed followed by an fsync, which is what energen's atomic write does. ``legacy`` is the previous implementation
(clone every tensor, build the file in memory, write it atomically), kept here for comparison.

    python benchmarks/checkpoint_write.py [--mb 400] [--repeats 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
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


def _child(method: str, mb: int, repeats: int, directory: str) -> dict:
    import torch  # noqa: F401 - imported before the baseline
    from safetensors.torch import save, save_file

    from energen.training.checkpoint import save_tensors
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
    state = _state(mb)
    nbytes = sum(t.nbytes for t in state.values())
    meta = {"format": "energen-bench", "step": "0"}
    path = Path(directory) / f"{method}.safetensors"
    times, extra = [], []
    for _ in range(repeats):
        reset = _reset_peak()
        base = _status_kb("VmRSS") if reset else _status_kb("VmHWM")
        t0 = time.perf_counter()
        write(path, state, meta)
        times.append(time.perf_counter() - t0)
        extra.append((_status_kb("VmHWM") - base) / 1024)
        path.unlink()
    return {"method": method, "state_mb": nbytes / 2**20, "seconds": statistics.median(times),
            "extra_mb": max(extra), "first_extra_mb": extra[0], "peak_reset": reset}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.mb, args.repeats, args.dir)))
        return
    directory = tempfile.mkdtemp(prefix="energen-ckpt-bench-", dir=args.dir)
    try:
        rows = {}
        for method in METHODS:
            cmd = [sys.executable, __file__, "--child", method, "--mb", str(args.mb), "--repeats", str(args.repeats)]
            out = subprocess.run(cmd + ["--dir", directory], check=True, capture_output=True, text=True, env=os.environ)
            rows[method] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ref, ref_sync = rows["safetensors"], rows["safetensors+fsync"]
    print(f"state {ref['state_mb']:.0f} MB, median of {args.repeats} writes, peak extra RSS of a write")
    print(
        f"{'method':<19}{'extra MB':>9}{'seconds':>9}{'RSS/safetensors':>17}{'time/safetensors':>18}{'time/+fsync':>13}"
    )
    for method, r in rows.items():
        x_rss = max(r["extra_mb"], 1.0) / max(ref["extra_mb"], 1.0)  # below 1 MB is noise
        x_t, x_sync = r["seconds"] / ref["seconds"], r["seconds"] / ref_sync["seconds"]
        print(f"{method:<19}{r['extra_mb']:>9.1f}{r['seconds']:>9.2f}{x_rss:>17.2f}{x_t:>18.2f}{x_sync:>13.2f}")
    if not ref["peak_reset"]:
        print("note: /proc/self/clear_refs not writable; extra RSS after the first write is a lower bound")


if __name__ == "__main__":
    main()
