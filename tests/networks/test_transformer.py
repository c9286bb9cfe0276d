"""The EqM-* transformer backbones and the import of reference checkpoints.

``RefDiT`` below is a second, independent writing of the reference repository's module layout (SiT/DiT:
timm-style names, a ``pos_embed`` parameter, the ``learn_sigma`` output half): parameter counts and
converted checkpoints are checked against it.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from torch import nn

from energen import Run
from energen.cli.main import main
from energen.convert import convert
from energen.errors import CheckpointError, ConfigError
from energen.networks.base import MODELS, NetSpec
from energen.networks.transformer import SIZES, DiT


# ------------------------------------------------------------------ the reference layout, written again
def ref_pos_embed(dim: int, grid: int) -> np.ndarray:
    def one_axis(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    g = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))  # (w, h)
    return np.concatenate([one_axis(dim // 2, g[0]), one_axis(dim // 2, g[1])], axis=1)


class RefBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def attend(self, x):
        b, n, d = x.shape
        qkv = self.attn.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.unbind(2)  # (b, n, h, e)
        w = torch.einsum("bnhe,bmhe->bhnm", q, k) / math.sqrt(d // self.heads)
        return self.attn.proj(torch.einsum("bhnm,bmhe->bnhe", w.softmax(-1), v).reshape(b, n, d))

    def forward(self, x, c):
        m = self.adaLN_modulation(c).unsqueeze(1).chunk(6, dim=2)
        x = x + m[2] * self.attend(self.norm1(x) * (1 + m[1]) + m[0])
        h = self.norm2(x) * (1 + m[4]) + m[3]
        return x + m[5] * self.mlp.fc2(nn.functional.gelu(self.mlp.fc1(h), approximate="tanh"))


class RefDiT(nn.Module):
    def __init__(self, depth, d, heads, patch, channels=4, image=32, num_classes=1000):
        super().__init__()
        self.patch, self.c = patch, channels
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv2d(channels, d, patch, patch)
        self.t_embedder = nn.Module()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.y_embedder = nn.Module()
        self.y_embedder.embedding_table = nn.Embedding(num_classes + 1, d)
        grid = image // patch
        self.pos_embed = nn.Parameter(torch.from_numpy(ref_pos_embed(d, grid)).float()[None], requires_grad=False)
        self.blocks = nn.ModuleList(RefBlock(d, heads) for _ in range(depth))
        self.final_layer = nn.Module()
        self.final_layer.norm_final = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_layer.linear = nn.Linear(d, patch * patch * 2 * channels)
        self.final_layer.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x, y):  # EqM: t = 0, the sigma half discarded
        t = torch.zeros(x.shape[0])
        freqs = torch.exp(-math.log(10000) * torch.arange(128) / 128)
        args = t[:, None] * freqs[None]
        c = self.t_embedder.mlp(torch.cat([torch.cos(args), torch.sin(args)], -1))
        c = c + self.y_embedder.embedding_table(y)
        h = self.x_embedder.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.final_layer.adaLN_modulation(c).unsqueeze(1).chunk(2, dim=2)
        h = self.final_layer.linear(self.final_layer.norm_final(h) * (1 + scale) + shift)
        b, p, g = x.shape[0], self.patch, x.shape[-1] // self.patch
        img = h.reshape(b, g, g, p, p, 2 * self.c).permute(0, 5, 1, 3, 2, 4).reshape(b, 2 * self.c, g * p, g * p)
        return img[:, : self.c]


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------------ tests
def test_twelve_sizes_match_reference_parameter_counts():
    names = [n for n in MODELS.names() if n.startswith("EqM-")]
    assert len(names) == 12
    with torch.device("meta"):
        for name in names:
            size, patch = name[4:].split("/")
            depth, d, heads = SIZES[size]
            ours = count(MODELS.get(name)(NetSpec((4, 32, 32), num_classes=1000)))
            ref = count(RefDiT(depth, d, heads, int(patch)))
            assert abs(ours - ref) / ref < 0.01, (name, ours, ref)
    # the published DiT-XL/2 figure (675,129,632) as one absolute anchor
    with torch.device("meta"):
        assert count(RefDiT(28, 1152, 16, 2)) == 675_129_632


def test_models_command_prints_all_twelve_with_reference_counts(capsys):
    assert main(["models"]) == 0
    rows = {r.split()[0]: r.split()[1:] for r in capsys.readouterr().out.splitlines() if r.startswith("EqM-")}
    assert len(rows) == 12
    with torch.device("meta"):
        for name, (ours, ref) in rows.items():
            size, patch = name[4:].split("/")
            assert int(ref.replace(",", "")) == count(RefDiT(*SIZES[size], patch=int(patch)))
            assert abs(int(ours.replace(",", "")) - int(ref.replace(",", ""))) / int(ref.replace(",", "")) < 0.01


def tiny(spec: NetSpec) -> DiT:
    return DiT(spec, depth=2, dim=64, heads=4, patch=2)


def test_attention_kernels_agree_and_checkpointing_keeps_gradients():
    torch.manual_seed(0)
    net = tiny(NetSpec((3, 8, 8), num_classes=4))
    for p in net.parameters():
        nn.init.normal_(p, std=0.05)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))
    ref = net(x, None, y)
    net.set_double_backward(True)
    torch.testing.assert_close(net(x, None, y), ref, rtol=1e-5, atol=1e-6)
    grads = []
    for ckpt in (False, True):
        net.grad_checkpointing = ckpt
        net.zero_grad()
        net(x, None, y).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_bad_image_shape_is_a_config_error():
    with pytest.raises(ConfigError, match="divisible by 2"):
        tiny(NetSpec((3, 7, 7)))


def _reference_checkpoint(tmp_path, ebm=False):
    torch.manual_seed(1)
    ref = RefDiT(*SIZES["S"], patch=8, channels=4, image=16, num_classes=10)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name != "pos_embed":
                p.normal_(0, 0.02)
    path = tmp_path / "ref.pt"
    args = argparse.Namespace(model="EqM-S/8", image_size=128, ebm="dot" if ebm else "none")
    torch.save({"ema": ref.state_dict(), "args": args}, path)
    return ref, path


def test_converted_reference_checkpoint_gives_the_same_field(tmp_path):
    ref, path = _reference_checkpoint(tmp_path)
    arch = convert(path, tmp_path / "run")
    assert arch["model"] == "EqM-S/8" and arch["num_classes"] == 10 and arch["sigma"]
    run = Run(tmp_path / "run")
    x, y = torch.randn(3, 4, 16, 16), torch.tensor([0, 4, 9])
    with torch.no_grad():
        torch.testing.assert_close(run.field(x, None, y), ref(x, y), rtol=1e-4, atol=1e-5)
    # and it samples: raw latents back, the model saw them times 0.18215
    z, _ = run.sample(2, seed=0, label=3, settings=run.default_sampler.switch("gd").with_options(steps=2))
    assert z.shape == (2, 4, 16, 16) and torch.isfinite(z).all()
    # images need the VAE: without one, a clear error instead of latents written as pixels
    common = ["sample", str(tmp_path / "run"), "--n", "4", "--steps", "1"]
    assert main([*common, "--out", str(tmp_path / "x.npz"), "--random-classes"]) == 2
    assert not (tmp_path / "x.npz").exists()
    assert main([*common, "--out", str(tmp_path / "z.npy"), "--random-classes", "--seed", "5"]) == 0
    one = main([*common[:3], "1", *common[4:], "--out", str(tmp_path / "z1.npy"), "--random-classes", "--seed", "8"])
    assert one == 0  # sample 3 of seed 5 is sample 0 of seed 8: its class comes from its own stream
    np.testing.assert_allclose(np.load(tmp_path / "z1.npy")[0], np.load(tmp_path / "z.npy")[3], rtol=1e-5, atol=1e-6)
    # the reference's FID command: random classes with guidance
    assert main([*common, "--out", str(tmp_path / "g.npy"), "--random-classes", "--seed", "5", "--cfg", "1.5"]) == 0
    assert not np.allclose(np.load(tmp_path / "g.npy"), np.load(tmp_path / "z.npy"))  # guided: not the w = 1 samples
    assert main([*common, "--out", str(tmp_path / "u.npy"), "--cfg", "1.5"]) == 2  # guidance needs classes


def test_converted_energy_checkpoint_is_the_gradient_of_the_dot_energy(tmp_path):
    ref, path = _reference_checkpoint(tmp_path, ebm=True)
    convert(path, tmp_path / "run", energy="dot")
    run = Run(tmp_path / "run")
    x, y = torch.randn(2, 4, 16, 16, requires_grad=True), torch.tensor([1, 2])
    expected = torch.autograd.grad((ref(x, y) * x).sum(), x)[0]  # the reference's field: grad of sum(h * x)
    torch.testing.assert_close(run.field(x.detach(), None, y), expected, rtol=1e-4, atol=1e-5)


def test_convert_refuses_pickled_code_and_foreign_files(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"ema": {"w": torch.zeros(1)}, "x": Evil()}, bad)
    with pytest.raises(CheckpointError, match="weights-only"):
        convert(bad, tmp_path / "a")
    other = tmp_path / "other.pt"
    torch.save({"ema": {"w": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="SiT/DiT"):
        convert(other, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_any_transformer_size_by_name_and_the_reference_sampler_by_size():
    from energen.convert import reference_sampler

    net = MODELS.get("DiT-2x32-h4/4")(NetSpec((3, 8, 8), num_classes=5))
    assert isinstance(net, DiT) and len(net.blocks) == 2 and net.blocks[0].attn.heads == 4 and net.patch == 4
    assert net(torch.randn(2, 3, 8, 8), None, torch.tensor([0, 5])).shape == (2, 3, 8, 8)
    assert "DiT-2x32-h4/4" in MODELS and "DiT-2x30-h4/2" in MODELS
    with pytest.raises(ConfigError, match="divisible by heads"):
        MODELS.get("DiT-2x30-h4/2")
    with pytest.raises(ConfigError, match="a name like DiT-2x64-h4/2"):
        MODELS.get("DiT-2x32/2")
    # the paper's samplers: EqM-B/2 by GD at 0.003, the others (XL/2) by NAG-GD at 0.0017, mu 0.3; 249 updates
    assert reference_sampler("EqM-B/2").to_json() == {"sampler": "gd", "format": 2, "steps": 249, "step_size": 0.003,
                                                      "tol": None, "noise": 0.0}  # fmt: skip
    assert reference_sampler("EqM-XL/2").to_json()["momentum"] == 0.3
