"""The ImageNet path at toy size on CPU: an EqM-S/2 transformer on an image folder (centre-cropped,
flipped) trained by 2 gloo processes, resumed bit-identically, and sampled by 2 processes into exactly N
PNGs and an ADM .npz that match a single-process run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.torch import load_file

from energen.cli.main import main


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            h, w = rng.integers(16, 40, 2)  # sizes differ: --image-size crops them
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_two_gloo_processes_train_resume_and_sample(tmp_path):
    folder = make_folder(tmp_path / "images")
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(worker), str(folder), str(tmp_path)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1",
                       **{k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    # resume is bit-identical: exported EMA weights, model, optimiser state
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "halves" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    ra = load_file(str(tmp_path / "straight" / "resume-000000004.safetensors"))
    rb = load_file(str(tmp_path / "halves" / "resume-000000004.safetensors"))
    assert ra.keys() == rb.keys() and all((ra[k] == rb[k]).all() for k in ra)
    # exactly N PNGs and a valid ADM .npz
    pngs = sorted((tmp_path / "pngs").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(5)]
    with np.load(tmp_path / "samples.npz") as z:
        arr = z["arr_0"]
    assert arr.shape == (5, 16, 16, 3) and arr.dtype == np.uint8
    # the same samples as one process draws (sample i uses noise stream seed + i)
    assert main(["sample", str(tmp_path / "straight"), "--n", "5", "--steps", "2", "--class", "1",
                 "--out", str(tmp_path / "one.npz"), "--seed", "3"]) == 0  # fmt: skip
    with np.load(tmp_path / "one.npz") as z:
        assert np.abs(z["arr_0"].astype(int) - arr.astype(int)).max() <= 1
