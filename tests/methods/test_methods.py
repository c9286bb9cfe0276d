"""Every registered method through the one Method interface: its model, objective, default sampler, energy answer,
and every field sampler on its model."""

import pytest
import torch

from energen.config import TrainConfig
from energen.data import load_dataset
from energen.fields import EnergyField, FieldEnergy, energy_source, has_energy
from energen.methods import METHODS
from energen.samplers.registry import SAMPLERS
from energen.samplers.settings import SamplerSettings
from energen.utils import PerSampleNoise

INFO = load_dataset("8gaussians").info
LEARNS_ENERGY = {"eqm": False, "eqm-e": True, "fm": False, "drl": True, "cdrl": True, "cd": True}


def built(name: str):
    method = METHODS.get(name)
    cfg = TrainConfig(method=name, model=method.default_model(INFO.shape), init_model="mlp-small")
    cfg = method.resolve(cfg, INFO.shape).validate()
    torch.manual_seed(0)
    return method, cfg, method.build_model(cfg, INFO.shape, 0).eval()


def test_every_method_is_registered_once_with_its_interface():
    assert set(METHODS.names()) == set(LEARNS_ENERGY)
    for name in METHODS:
        method, cfg, model = built(name)
        assert method.name == name and method.summary
        x = torch.randn(8, 2)
        out = method.objective(cfg, 0, INFO)(model.train(), x, None, torch.Generator().manual_seed(0))
        assert out.per_sample.shape == (8,) and torch.isfinite(out.per_sample).all()  # losses are per sample
        assert isinstance(method.default_sampler(cfg, INFO), SamplerSettings)


@pytest.mark.parametrize("name", sorted(LEARNS_ENERGY))
def test_one_answer_to_has_an_energy(name):
    """The model answers; energy_source then uses its own energy (never the quadrature of a field that has one)."""
    method, cfg, model = built(name)
    assert has_energy(model) is LEARNS_ENERGY[name]
    source = energy_source(model)
    assert isinstance(source, EnergyField if LEARNS_ENERGY[name] else FieldEnergy)
    if LEARNS_ENERGY[name]:
        z = torch.randn(5, 2)
        e, f = source.energy_and_field(z)
        torch.testing.assert_close(e, method.energy(model, z, None, 0))
        torch.testing.assert_close(f, model(z))  # the field is -grad of that energy


@pytest.mark.parametrize("name", sorted(LEARNS_ENERGY))
def test_every_field_sampler_runs_on_every_method(name):
    method, cfg, model = built(name)
    default = method.default_sampler(cfg, INFO)
    for sampler in SAMPLERS:
        if SAMPLERS.get(sampler).walks_levels or (SAMPLERS.get(sampler).needs_energy and method.learns_velocity):
            continue
        settings = method.field_sampler(model, default, sampler).with_options(steps=3)
        noise = PerSampleNoise(range(6), INFO.shape)
        x = settings.build()(model, noise(range(6)), noise=noise).x
        assert x.shape == (6, 2) and torch.isfinite(x).all(), sampler
