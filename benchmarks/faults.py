"""Fault injection: kill -9 training at random moments, resume, and count what survives.

For each method, one uninterrupted run of ``energen train`` is the reference. Each trial starts the same run in
a subprocess, sends SIGKILL after a random delay (some land during training steps, some during checkpoint writes:
``--ckpt-every 1`` writes one every step), then finishes it with ``energen train --resume`` (or plain ``train``
when no checkpoint existed yet) and compares its final resume state and export with the reference's, tensor by
tensor. Counted: resumes that end bit-identical to the reference, safetensors files that fail to load right after
the kill (corrupt), temporary files left after the resumed run (leftovers), and runs that could not be finished.

    python benchmarks/faults.py --trials 8 --methods eqm cd cdrl          # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

p = argparse.ArgumentParser()
p.add_argument("--methods", nargs="+", default=["eqm", "cd", "cdrl"])
p.add_argument("--trials", type=int, default=8, help="kills per method")
p.add_argument("--steps", type=int, default=60)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
rng = random.Random(a.seed)
EXTRA = {"cd": ["--langevin-steps", "5"], "cdrl": ["--langevin-steps", "3"]}


def command(method: str, out: Path, resume: bool = False) -> list[str]:
    flags = ["--method", method, "--data", "8gaussians", "--model", "mlp-small", "--steps", str(a.steps),
             "--batch-size", "64", "--ckpt-every", "1", "--log-every", "5", "--no-calibrate", "--quiet",
             "--out", str(out), *EXTRA.get(method, [])]  # fmt: skip
    return [sys.executable, "-m", "energen.cli", "train", *flags, *(["--resume"] if resume else [])]


def final_state(run: Path) -> dict[str, torch.Tensor]:
    meta = json.loads((run / "resume.json").read_text())
    export = load_file(str(run / "model.safetensors"))
    return load_file(str(run / meta["tensors"])) | {f"export.{k}": v for k, v in export.items()}


def corrupt_files(run: Path) -> int:
    bad = 0
    for f in run.glob("*.safetensors"):
        try:
            load_file(str(f))
        except Exception:  # noqa: BLE001 - any failure to read is a corrupt file
            bad += 1
    return bad


print(f"{a.trials} kills per method, {a.steps} steps, a checkpoint every step; torch {torch.__version__}")
print("| method | kills | bit-exact resumes | corrupt files after the kill | leftover temporary files | unfinished |")
print("|---|---|---|---|---|---|")
env = os.environ | {"OMP_NUM_THREADS": "1"}
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for method in a.methods:
        ref = tmp / f"{method}-ref"
        t0 = time.perf_counter()
        subprocess.run(command(method, ref), check=True, env=env, capture_output=True)
        duration = time.perf_counter() - t0
        expected = final_state(ref)
        exact = corrupt = leftovers = unfinished = finished = 0
        for trial in range(a.trials):
            run = tmp / f"{method}-{trial}"
            proc = subprocess.Popen(command(method, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.1, 0.8) * duration)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            corrupt += corrupt_files(run) if run.exists() else 0
            resumable = (run / "resume.json").is_file()
            if resumable and json.loads((run / "resume.json").read_text())["step"] == a.steps:
                finished += 1  # killed after its last checkpoint: nothing left to resume
            else:
                done = subprocess.run(command(method, run, resume=resumable), env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    unfinished += 1
                    print(f"  {method} trial {trial}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                    continue
                leftovers += sum(1 for f in run.iterdir() if f.name.endswith(".tmp"))  # after train cleaned up
            got = final_state(run)
            exact += int(got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got))
        print(f"| {method} | {a.trials} ({finished} after the last checkpoint) | {exact} | {corrupt} | {leftovers} "
              f"| {unfinished} |", flush=True)  # fmt: skip
