"""The pixel-space U-Net: DDPM's CIFAR-10 size, energy gradients; every method on it and on the
transformer, with batch invariance."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from energen.config import TrainConfig
from energen.data.info import DataInfo
from energen.errors import ConfigError
from energen.methods.registry import METHODS
from energen.networks.base import MODELS, NetSpec
from energen.networks.energy import spectral_normalise
from energen.networks.transformer import DiT
from energen.training.loop import resolve_config


def test_cifar_size_matches_ddpm():
    with torch.device("meta"):
        n = sum(p.numel() for p in MODELS.get("unet")(NetSpec((3, 32, 32), time_conditioned=True)).parameters())
    assert abs(n - 35.7e6) / 35.7e6 < 0.01  # DDPM's CIFAR-10 model: 35.7M parameters


@pytest.mark.parametrize("model", ["unet-small", "dit-test"])
@pytest.mark.parametrize("method", ["eqm", "eqm-e", "fm", "cd", "cdrl"])
def test_every_method_runs_on_both_image_backbones(method, model, monkeypatch):
    monkeypatch.setitem(MODELS._items, "dit-test", lambda spec: DiT(spec, depth=2, dim=64, heads=4, patch=2))
    info = DataInfo("x", "image", (1, 8, 8), "nchw", 3, [0.0], [1.0], -1.0, 1.0)
    cfg = resolve_config(TrainConfig(method=method, model=model, conditional=True), info)
    torch.manual_seed(0)
    net = METHODS.get(method).build_model(replace(cfg, spectral_norm=False), (1, 8, 8), 3)
    for p in net.parameters():  # leave the zero start, so the output depends on every layer
        nn.init.normal_(p, std=0.05)
    if cfg.spectral_norm:  # cd: normalise the new weights (the power iteration starts from them)
        spectral_normalise(net.net)
    model = net.eval()  # no dropout, no power-iteration step between the two calls
    x, y, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), torch.rand(4)
    out = model(x, t, y)
    assert out.shape == x.shape and torch.isfinite(out).all() and out.abs().max() > 0
    torch.testing.assert_close(model(x[:2], t[:2], y[:2]), out[:2], rtol=1e-4, atol=1e-4 * out.abs().max().item())


def test_energy_field_trains_through_the_unet():
    torch.manual_seed(0)
    info = DataInfo("x", "image", (1, 8, 8), "nchw", 0, [0.0], [1.0], -1.0, 1.0)
    cfg = resolve_config(TrainConfig(method="eqm-e", model="unet-small"), info)
    model = METHODS.get("eqm-e").build_model(cfg, (1, 8, 8), 0).train()
    model(torch.randn(3, 1, 8, 8)).square().sum().backward()  # a loss on -grad E: double backward
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unet_shape_errors():
    with pytest.raises(ConfigError, match="divisible by 4"):
        MODELS.get("unet-small")(NetSpec((3, 6, 6)))
    with pytest.raises(ConfigError, match="for images"):
        MODELS.get("unet-small")(NetSpec((2,)))
