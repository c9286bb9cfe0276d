"""Run under ``torchrun --nproc_per_node=2`` by test_distributed.py: EqM-S/2 on an image folder, trained
straight to 4 steps and in two halves with a resume, then sampled by 2 processes. One launch serves all."""

import sys
from pathlib import Path

from energen import TrainConfig, train
from energen.cli.main import main

folder, root = sys.argv[1], Path(sys.argv[2])
cfg = TrainConfig(method="eqm", data=folder, image_size=16, hflip=True, conditional=True, model="EqM-S/2",
                  steps=4, batch_size=4, ckpt_every=2, calibrate=False, lr=1e-4)  # fmt: skip
train(cfg, root / "straight", progress=False)
train(TrainConfig(**{**cfg.to_json(), "steps": 2}), root / "halves", progress=False)
train(cfg, root / "halves", resume=True, overrides={"steps": 4}, progress=False)
rc = main(["sample", str(root / "straight"), "--n", "5", "--steps", "2", "--class", "1",
           "--out", str(root / "pngs"), "--npz", str(root / "samples.npz"), "--seed", "3"])  # fmt: skip
sys.exit(rc)
