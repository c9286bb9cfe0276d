"""Data parallelism on CPU with 2 gloo processes (one ``torchrun`` launch, ``ddp_worker.py``, serves every test).

- DDP and FSDP2 give the weights, EMA weights and AdamW moments of one process on the same global batch, for
  EqM, EqM-E (double backward), CDRL (Langevin chains between the positive and negative passes, two parameter
  groups) and contrastive divergence (chains on the energy in eval mode, Improved CD's KL term).
- The image path at toy size (a small DiT on an image folder, centre-cropped, flipped, class-conditional) trains
  under ddp and fsdp, resumes bit-identically under each, and the two agree; cd under fsdp resumes
  bit-identically (its replay buffer included); 2 processes sample exactly N PNGs and an ADM .npz that match a
  single-process run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from energen.cli.main import main

TOL = 1e-5  # weights after 3 AdamW steps of lr 1e-3 (they move by about 3e-3): float rounding only


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            h, w = rng.integers(16, 40, 2)  # sizes differ: --image-size crops them
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    folder = make_folder(root / "images")
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
           str(folder), str(root)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return root


def _same_files(a: Path, b: Path, name: str) -> None:
    ta, tb = load_file(str(a / name)), load_file(str(b / name))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert (ta[k] == tb[k]).all(), k


@pytest.mark.parametrize("run", [f"{m}:{k}" for m in ("eqm", "eqm-e", "cdrl", "cd") for k in ("ddp", "fsdp")])
def test_two_processes_match_one_process(two_processes, run):
    r = json.loads((two_processes / "results.json").read_text())["equivalence"][run]
    assert r["moved"] > 1e-3  # the steps did something
    assert r["model"] <= TOL and r["ema"] <= TOL, r
    assert r["optimizer"] <= 1e-6, r  # AdamW moments
    assert r["reloaded"] == 0.0  # the gathered optimiser state loads back exactly (sharded under fsdp)
    assert r["groups"] == (2 if run.startswith("cdrl") else 1)


@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_resume_is_bit_identical(two_processes, kind):
    straight, halves = two_processes / kind / "straight", two_processes / kind / "halves"
    _same_files(straight, halves, "model.safetensors")
    _same_files(straight, halves, "resume-000000004.safetensors")
    names = load_file(str(straight / "model.safetensors")).keys()
    assert not any(k.startswith(("module.", "model.", "_orig_mod.")) for k in names)  # the network's own names


def test_ddp_and_fsdp_train_alike(two_processes):
    a = load_file(str(two_processes / "ddp" / "straight" / "resume-000000004.safetensors"))
    b = load_file(str(two_processes / "fsdp" / "straight" / "resume-000000004.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a if not k.startswith("rng.")) <= TOL
    assert all((a[k] == b[k]).all() for k in a if k.startswith("rng."))


def test_contrastive_divergence_resumes_under_fsdp(two_processes):
    straight, halves = two_processes / "cd-fsdp" / "straight", two_processes / "cd-fsdp" / "halves"
    _same_files(straight, halves, "resume-000000006.safetensors")  # weights, moments, replay buffer, RNG


def test_two_processes_sample(two_processes, tmp_path):
    pngs = sorted((two_processes / "pngs").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(5)]
    with np.load(two_processes / "samples.npz") as z:
        arr = z["arr_0"]
    assert arr.shape == (5, 16, 16, 3) and arr.dtype == np.uint8
    # the same samples as one process draws (sample i uses noise stream seed + i)
    assert main(["sample", str(two_processes / "ddp" / "straight"), "--n", "5", "--steps", "2", "--class", "1",
                 "--out", str(tmp_path / "one.npz"), "--seed", "3"]) == 0  # fmt: skip
    with np.load(tmp_path / "one.npz") as z:
        assert np.abs(z["arr_0"].astype(int) - arr.astype(int)).max() <= 1
