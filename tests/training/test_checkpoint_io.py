"""Checkpoint tensor files: streamed, atomic, bit-identical, checksummed, reproducible byte for byte and created
with the umask's permissions."""

from __future__ import annotations

import json
import os
import stat
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from energen.errors import CheckpointError
from energen.training import checkpoint
from energen.training.checkpoint import load_tensors, save_tensors


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g, dtype=torch.float64)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "bf16": torch.randn(7, generator=g).to(torch.bfloat16),
        "f16": torch.randn(2, 2, generator=g).half(),
        "f64": base,
        "i64": torch.randint(-(2**40), 2**40, (5,), generator=g),
        "i32": torch.randint(-1000, 1000, (4, 2), generator=g, dtype=torch.int32),
        "u8": torch.randint(0, 255, (9,), generator=g, dtype=torch.uint8),
        "bool": torch.rand(6, generator=g) > 0.5,
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 3),
        "transposed": base.t(),  # non-contiguous view of base
        "row": base[2],  # contiguous view inside base
        "alias": base,  # the same tensor under a second name
        "param": torch.nn.Parameter(torch.ones(3)),
    }


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def test_round_trip_is_bit_identical(tmp_path):
    state = _state()
    before = {k: v.detach().clone() for k, v in state.items()}
    path = tmp_path / "t.safetensors"
    save_tensors(path, state, {"format": "energen-test", "step": "7"})
    loaded = load_tensors(path)
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape, k
        assert torch.equal(loaded[k], v.detach()), k
        assert torch.equal(_bits(loaded[k]), _bits(v)), k
    for k, v in state.items():  # the inputs are not modified
        assert torch.equal(v.detach(), before[k])
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta.pop("sha256") == checkpoint.tensor_checksum(state)
    assert meta == {"format": "energen-test", "step": "7"}


def test_nan_payloads_and_negative_zero_survive(tmp_path):
    bits = torch.tensor([0x7FC00001, 0x80000000, 0x7F800000, 0xFFC00123], dtype=torch.int64).to(torch.int32)
    x = bits.view(torch.float32)
    save_tensors(tmp_path / "n.safetensors", {"x": x})
    assert torch.equal(load_tensors(tmp_path / "n.safetensors")["x"].view(torch.int32), bits)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_file_mode_follows_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        save_tensors(tmp_path / "m.safetensors", {"a": torch.zeros(2)})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == 0o666 & ~mask


def test_overwrite_replaces_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "o.safetensors"
    save_tensors(path, {"a": torch.zeros(3)})
    save_tensors(path, {"b": torch.ones(2)})
    assert set(load_tensors(path)) == {"b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.safetensors"]


def test_failed_write_keeps_old_file_and_removes_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.safetensors"
    save_tensors(path, {"a": torch.arange(4.0)}, {"step": "1"})
    old_bytes = path.read_bytes()

    def half_then_fail(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_tensors(path, {"a": torch.zeros(1000)}, {"step": "2"})
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.safetensors"]
    assert torch.equal(load_tensors(path)["a"], torch.arange(4.0))


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(tensors, filename, metadata=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(checkpoint, "save_file", fail)
    with pytest.raises(RuntimeError):
        save_tensors(tmp_path / "x.safetensors", {"a": torch.zeros(1)})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError):
        load_tensors(tmp_path / "x.safetensors")


def test_only_overlapping_tensors_are_copied():
    base = torch.arange(20.0)
    halves = {"lo": base[:10], "hi": base[10:], "t": torch.ones(2, 3).t(), "own": torch.ones(4)}
    out = checkpoint._streamable(halves)
    # disjoint views of one storage and ordinary tensors are written from their own memory
    assert out["lo"].data_ptr() == base.data_ptr() and out["hi"].data_ptr() == base[10:].data_ptr()
    assert out["own"].data_ptr() == halves["own"].data_ptr()
    assert out["t"].is_contiguous()
    overlapping = {"all": base, "part": base[5:8], "same": base}
    out = checkpoint._streamable(overlapping)
    ptrs = {out[k].untyped_storage().data_ptr() for k in out}
    assert len(ptrs) == 3  # one keeps base's storage, the other two are cloned
    assert base.untyped_storage().data_ptr() in ptrs


def test_resume_json_is_written_after_tensor_file(tmp_path, monkeypatch):
    order = []
    real_save_file, real_json = checkpoint.save_file, checkpoint.atomic_write_json
    monkeypatch.setattr(checkpoint, "save_file", lambda *a, **k: (order.append("tensors"), real_save_file(*a, **k)))
    monkeypatch.setattr(checkpoint, "atomic_write_json", lambda *a, **k: (order.append("json"), real_json(*a, **k)))
    model = {"w": torch.randn(3, 3)}
    opt = {"state": {}, "param_groups": []}
    rng = {"cpu": torch.get_rng_state()}
    state = checkpoint.ResumeState(step=5, model=model, ema={"w": model["w"]}, optimizer=opt, rng=rng, extra={"k": 1})
    checkpoint.save_resume(tmp_path, state)
    assert order == ["tensors", "json"]
    back = checkpoint.load_resume(tmp_path)
    assert back.step == 5 and torch.equal(back.model["w"], model["w"]) and torch.equal(back.ema["w"], model["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume-000000005.safetensors", "resume.json"]


def _data_start(path) -> int:
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def test_flipped_exponent_bits_are_refused_as_corrupt(tmp_path):
    path = tmp_path / "model.safetensors"
    save_tensors(path, {"w": torch.randn(64, 64), "b": torch.randn(64)}, {"format": "energen-model"})
    raw = bytearray(path.read_bytes())
    raw[_data_start(path) + 3] ^= 0x40  # the high exponent bits of the first float32
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt: checksum mismatch"):
        load_tensors(path)


def test_renamed_or_reshaped_tensor_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"a": torch.zeros(2, 3), "b": torch.ones(4)})
    path.write_bytes(path.read_bytes().replace(b'"shape":[2,3]', b'"shape":[3,2]'))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_tensors(path)


def test_files_without_checksum_still_load(tmp_path):
    path = tmp_path / "old.safetensors"
    save_file({"w": torch.arange(6.0)}, str(path), metadata={"format": "energen-model", "step": "3"})
    assert torch.equal(load_tensors(path)["w"], torch.arange(6.0))
    save_file({"w": torch.arange(6.0)}, str(path))  # no metadata at all
    assert torch.equal(load_tensors(path)["w"], torch.arange(6.0))


def test_checksum_covers_every_dtype_and_aliases(tmp_path):
    state = _state()
    path = tmp_path / "s.safetensors"
    save_tensors(path, state)
    loaded = load_tensors(path)  # verified against the checksum of the tensors as given
    assert checkpoint.tensor_checksum(loaded) == checkpoint.tensor_checksum(state)


def test_identical_saves_are_byte_identical(tmp_path):
    state = {"w": torch.randn(5, 5, generator=torch.Generator().manual_seed(1)), "b": torch.zeros(5)}
    meta = {k: f"value-{k}" for k in ("format", "step", "zeta", "alpha", "mid", "omega", "kappa", "beta")}
    blobs = set()
    for i in range(6):
        save_tensors(tmp_path / f"{i}.safetensors", state, meta)
        blobs.add((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(blobs) == 1
    blob = blobs.pop()
    header = json.loads(blob[8 : _data_start(tmp_path / "0.safetensors")])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])


def test_save_fsyncs_the_directory(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd)), real_fsync(fd))[1])
    save_tensors(tmp_path / "d.safetensors", {"a": torch.zeros(2)})
    dirs = [s for s in synced if stat.S_ISDIR(s.st_mode)]
    assert any(s.st_ino == tmp_path.stat().st_ino and s.st_dev == tmp_path.stat().st_dev for s in dirs)
    files = [s for s in synced if stat.S_ISREG(s.st_mode)]
    assert files  # the tensor file itself is fsynced before the rename
