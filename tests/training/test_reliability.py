"""Run-directory reliability: the lock, kills at any point, crash leftovers and a loss that runs away (issue 25)."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import tiny_config

from energen import TrainConfig, train
from energen.errors import ConfigError, TrainingDiverged

_CHILD = """
import json, sys, torch
from energen import TrainConfig, train
torch.set_num_threads(1)
train(TrainConfig(**json.loads(sys.argv[2])), sys.argv[1], progress=False)
"""


def _snapshot(d):
    """Every file of ``d`` but the lock (which holds the pid of its latest holder)."""
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


def _spawn_and_kill(d, cfg: TrainConfig, ready, pid_check=None):
    """Train ``cfg`` into ``d`` in a child process, SIGKILL it once ``ready(d)`` holds (after ``pid_check(pid)``)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(d), json.dumps(cfg.to_json())])
    try:
        deadline = time.time() + 120
        while not ready(d):
            assert child.poll() is None, "the child trainer exited early"
            assert time.time() < deadline, "the child trainer did not get there in time"
            time.sleep(0.05)
        if pid_check is not None:
            pid_check(child.pid)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def _log_rows(d):
    text = (d / "log.csv").read_text() if (d / "log.csv").exists() else ""
    return list(csv.DictReader(text.splitlines()))


def _temporary_files(d):
    return sorted(p.name for p in d.rglob(".*.tmp"))


def test_second_trainer_refuses_in_one_line(tmp_path):
    from energen.training.lock import run_lock

    d = tmp_path / "run"
    train(tiny_config(steps=10), d, progress=False)
    before = _snapshot(d)
    with run_lock(d):  # another holder of the lock: refused, on resume as on a fresh start
        with pytest.raises(ConfigError, match=rf"is in use by another process \(pid {os.getpid()}\); wait"):
            train(tiny_config(), d, resume=True, overrides={"steps": 20}, progress=False)
        fresh = tmp_path / "fresh"  # two fresh trainers racing into one new directory: the second refuses
        with run_lock(fresh), pytest.raises(ConfigError, match="in use by another process"):
            train(tiny_config(steps=10), fresh, progress=False)
        assert [p.name for p in fresh.iterdir()] == [".lock"]
    assert _snapshot(d) == before
    train(tiny_config(), d, resume=True, overrides={"steps": 20}, progress=False)  # released: it resumes


def test_kill_before_the_first_checkpoint_starts_over(tmp_path):
    d = tmp_path / "run"
    cfg = tiny_config(steps=100_000, ckpt_every=100_000, log_every=1)

    def refused_while_running(pid):
        with pytest.raises(ConfigError, match=rf"in use by another process \(pid {pid}\)"):
            train(cfg, d, progress=False)

    _spawn_and_kill(d, cfg, lambda d: len(_log_rows(d)) >= 3, refused_while_running)
    assert not (d / "resume.json").exists()
    (d / ".config.json.abcd_123.tmp").write_text("{")  # a write cut short by the kill
    before = _snapshot(d)
    with pytest.raises(ConfigError, match="before its first checkpoint with --lr 0.001, not 0.002"):
        train(tiny_config(steps=10, lr=2e-3), d, progress=False)
    assert _snapshot(d) == before  # nothing of the stopped run changed
    res = train(tiny_config(steps=10, ckpt_every=5, log_every=5), d, progress=False)  # bookkeeping may differ
    assert res.step == 10 and (d / "resume.json").is_file()
    assert [r["step"] for r in _log_rows(d)] == ["5", "10"]  # the killed run's rows are gone
    assert _temporary_files(d) == []


def test_resume_after_a_kill_before_the_first_log_row(tmp_path):
    d = tmp_path / "run"
    cfg = tiny_config(steps=100_000, ckpt_every=1, log_every=100_000)
    _spawn_and_kill(d, cfg, lambda d: (d / "resume.json").is_file())
    assert _log_rows(d) == []
    step = json.loads((d / "resume.json").read_text())["step"]
    res = train(cfg, d, resume=True, overrides={"steps": step + 2}, progress=False)
    assert res.step == step + 2
    assert [r["step"] for r in _log_rows(d)] == [str(step + 2)]
    assert _temporary_files(d) == []


@pytest.mark.parametrize("keep", ["nothing", "header", "header, a row and a row cut short"])
def test_resume_with_an_empty_header_only_or_cut_log(tmp_path, keep):
    d = tmp_path / "run"
    train(tiny_config(steps=10, ckpt_every=5, log_every=5), d, progress=False)
    header, row5, row10 = (d / "log.csv").read_text().splitlines(keepends=True)
    log = {"nothing": "", "header": header, "header, a row and a row cut short": header + row5 + row10[:6]}[keep]
    (d / "log.csv").write_text(log)
    train(tiny_config(), d, resume=True, overrides={"steps": 12}, progress=False)
    assert [r["step"] for r in _log_rows(d)] == (["5", "12"] if "row" in keep else ["12"])


def test_crash_leftovers_are_removed_and_only_those(tmp_path):
    d = tmp_path / "run"
    train(tiny_config(steps=10, keep_exports=True), d, progress=False)
    own = [d / ".resume-000000020.safetensors.k3j_9x2a.tmp", d / ".model.safetensors.abcdefgh.tmp",
           d / ".resume.json.0123abcd.tmp", d / "exports" / ".model-000000020.safetensors.zz_zz_zz.tmp"]  # fmt: skip
    others = [d / ".notes.txt.abcdefgh.tmp", d / "model.safetensors.tmp", d / ".sampler.json.abcdefgh.tmp"]
    for p in own + others:
        p.write_bytes(b"\0" * 100)
    train(tiny_config(), d, resume=True, overrides={"steps": 20}, progress=False)
    assert [p for p in own if p.exists()] == []
    assert all(p.exists() for p in others)


def test_learning_rate_is_bounded():
    for bad in (1e39, 1e3, 10.5):
        with pytest.raises(ConfigError, match=re.escape(f"lr must be <= 10 (larger rates diverge), got {bad:g}")):
            tiny_config(lr=bad).validate()
        with pytest.raises(ConfigError, match="init-lr must be <= 10"):
            tiny_config(init_lr=bad).validate()
    tiny_config(lr=10.0, init_lr=10.0).validate()


def test_loss_that_runs_away_stops_with_the_step(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"at step 5: .* start again with a lower --lr \(now 10\)$"):
        train(tiny_config(lr=10.0, steps=50, ckpt_every=10, log_every=5), d, progress=False)
    assert not (d / "model.safetensors").exists()  # no run-away model is exported
