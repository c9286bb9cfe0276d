import pytest
import torch
from conftest import tiny_config

from energen import Run, train
from energen.cli.main import main
from energen.errors import ConfigError, TrainingDiverged
from energen.fields import EnergyField
from energen.losses.contrastive_divergence import ContrastiveDivergence, data_jump, shift_images
from energen.losses.replay_buffer import DATA_START_NOISE, ReplayBuffer
from energen.networks.base import NetSpec
from energen.networks.energy import ScalarEnergy
from energen.networks.mlp import MLP


def test_buffer_reinitialises_the_requested_fraction():
    buf = ReplayBuffer(1000, (2,), reinit=0.05, box=(3.0, 4.0), seed=0)
    x, fresh = buf.sample(64)
    assert fresh.all() and ((x >= 3) & (x <= 4)).all()  # nothing stored yet: every chain starts from noise
    buf.push(torch.zeros(1000, 2))
    x, fresh = (torch.cat(v) for v in zip(*(buf.sample(1000) for _ in range(40)), strict=True))
    assert abs(fresh.float().mean() - 0.05) < 0.005
    assert (x[~fresh] == 0).all() and ((x[fresh] >= 3) & (x[fresh] <= 4)).all()


def test_buffer_normal_init_starts_fresh_chains_from_a_standard_normal():
    buf = ReplayBuffer(100, (2,), reinit=1.0, box=(3.0, 4.0), seed=0, init="normal")
    buf.push(torch.full((100, 2), 7.0))
    x = torch.cat([buf.sample(1000)[0] for _ in range(20)])
    assert abs(x.mean()) < 0.03 and abs(x.std() - 1) < 0.03  # every chain fresh (reinit 1), none from the box
    with pytest.raises(ValueError, match="buffer init"):
        ReplayBuffer(10, (2,), reinit=0.1, box=(0.0, 1.0), seed=0, init="gauss")


def test_buffer_data_init_starts_fresh_chains_at_the_batch_plus_noise():
    buf = ReplayBuffer(100, (2,), reinit=0.5, box=(3.0, 4.0), seed=0, init="data")
    buf.push(torch.full((100, 2), 7.0))
    batch = torch.randn(4000, 2) * 5
    x, fresh = (torch.cat(v) for v in zip(*(buf.sample(100, b) for b in batch.split(100)), strict=True))
    d = x[fresh] - batch[fresh]  # a fresh chain starts at its own data point, moved by noise of std 0.3
    assert abs(fresh.float().mean() - 0.5) < 0.03 and abs(d.mean()) < 0.02 and abs(d.std() - DATA_START_NOISE) < 0.01
    assert (x[~fresh] == 7).all()
    with pytest.raises(ValueError, match="pass the batch"):
        buf.sample(10)


def test_buffer_ring_and_reservoir():
    ring = ReplayBuffer(10, (1,), reinit=0.0, box=(0.0, 1.0), seed=0)
    ring.push(torch.arange(25.0)[:, None])
    assert ring.count == 10 and sorted(ring.data[:, 0].tolist()) == list(range(15, 25))
    res = ReplayBuffer(100, (1,), reinit=0.0, box=(0.0, 1.0), seed=0, reservoir=True)
    res.push(torch.arange(10_000.0)[:, None])
    assert res.count == 100 and res.seen == 10_000
    assert 2000 < res.data.mean() < 8000  # a uniform sample of the whole history, not the latest points


def test_buffer_state_round_trip():
    a = ReplayBuffer(50, (3,), reinit=0.3, box=(-1.0, 1.0), seed=1)
    a.push(torch.randn(70, 3))
    b = ReplayBuffer(50, (3,), reinit=0.3, box=(-1.0, 1.0), seed=99)
    b.load_state_dict(a.state_dict())
    (xa, fa), (xb, fb) = a.sample(20), b.sample(20)
    assert torch.equal(xa, xb) and torch.equal(fa, fb)
    a.push(xa)
    b.push(xb)
    assert torch.equal(a.data, b.data)


def test_cd_chain_on_a_gaussian_energy_recovers_its_moments():
    # E = |x - m|^2 / (2 v): exact Langevin (noise sqrt(2 eta)) samples N(m, v); small eta, many steps
    m, v = torch.tensor([1.0, -2.0]), 0.25
    cd = ContrastiveDivergence(buffer=ReplayBuffer(1, (2,), reinit=1.0, box=(0.0, 1.0), seed=0), steps=1,
                               step=0.002, noise=0.002**0.5 * 2**0.5)  # fmt: skip
    field = EnergyField(lambda x, t, y: ((x - m) ** 2).sum(1) / (2 * v))
    torch.manual_seed(0)
    x = cd.chain(3000)(field, torch.zeros(4000, 2)).x
    assert torch.allclose(x.mean(0), m, atol=0.03)
    assert torch.allclose(x.var(0), torch.full((2,), v), rtol=0.08)


class ConstantEnergy(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.value = value

    def energy(self, x, t=None, y=None):
        return self.w * x.sum(1) + self.value


def test_drifting_energy_is_a_problem():
    cd = ContrastiveDivergence(buffer=ReplayBuffer(100, (2,), reinit=0.05, box=(-1.0, 1.0), seed=0), steps=2,
                               step=0.01, noise=0.1)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    assert cd(ConstantEnergy(0.5), torch.randn(8, 2), None, g).problem is None
    out = cd(ConstantEnergy(25.0), torch.randn(8, 2), None, g)
    assert "drifted to 25" in out.problem and "--energy-reg" in out.problem
    cd.energy_reg = 0.01  # the limit is 10 / alpha: energies near 1 / (2 alpha) are the loss's own scale
    assert cd(ConstantEnergy(25.0), torch.randn(8, 2), None, g).problem is None
    assert "drifted to 2e+03" in cd(ConstantEnergy(2000.0), torch.randn(8, 2), None, g).problem


class SplitEnergy(torch.nn.Module):
    """Energy ``low`` on the data batch (its first call after the chain), ``high`` on the chains' ends."""

    def __init__(self, low, high):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.low, self.high = low, high

    def energy(self, x, t=None, y=None):
        return self.w * x.sum(1) + torch.where(x[:, 0] > 50, self.low, self.high)


def test_runaway_gap_is_a_problem():
    cd = ContrastiveDivergence(buffer=ReplayBuffer(100, (2,), reinit=0.05, box=(-1.0, 1.0), seed=0), steps=2,
                               step=0.01, noise=0.1, energy_reg=0.01)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    data = torch.full((8, 2), 100.0)  # the energy tells data (x > 50) from chains (in the box)
    assert cd(SplitEnergy(-30.0, 30.0), data, None, g).problem is None  # gap 60 < 0.75 / alpha = 75
    out = cd(SplitEnergy(-40.0, 40.0), data, None, g)
    assert "gap E(x-) - E(x+) ran away to 80" in out.problem and "--langevin-step" in out.problem


def test_training_stops_when_the_energy_drifts(tmp_path, monkeypatch):
    monkeypatch.setattr("energen.losses.contrastive_divergence.MAX_ENERGY", 0.0)
    with pytest.raises(TrainingDiverged, match="at step 1: the data energy drifted"):
        train(tiny_config(method="cd", langevin_steps=2), tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "model.safetensors").exists()  # no checkpoint of a diverged model


def test_icd_kl_reaches_the_parameters_only_through_the_sampler():
    torch.manual_seed(0)
    model = ScalarEnergy(MLP(NetSpec((2,), scalar=True), width=16, depth=1))
    x = torch.randn(32, 2)
    grads = {}
    for kl in (0.0, 1.0):
        buf = ReplayBuffer(100, (2,), reinit=0.05, box=(-2.0, 2.0), seed=0)
        cd = ContrastiveDivergence(buffer=buf, steps=3, step=0.05, noise=0.1, kl=kl)
        out = cd(model, x, None, torch.Generator().manual_seed(0))
        model.zero_grad()
        out.per_sample.mean().backward()
        grads[kl] = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert all(p.requires_grad for p in model.parameters())
    assert not torch.allclose(grads[0.0], grads[1.0])  # the KL term adds gradient (through x_K)


def test_entropy_term_and_augmentation():
    img = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(50, 1, 1, 1)
    moved = shift_images(img, torch.Generator().manual_seed(0))
    assert moved.shape == img.shape and (moved != img).any(dim=(1, 2, 3)).float().mean() > 0.5
    model = ScalarEnergy(MLP(NetSpec((1, 4, 4), scalar=True), width=16, depth=1))
    buf = ReplayBuffer(500, (1, 4, 4), reinit=0.05, box=(-1.0, 1.0), seed=0)
    buf.push(torch.randn(200, 1, 4, 4))
    cd = ContrastiveDivergence(buffer=buf, steps=3, step=0.05, noise=0.1, entropy=0.3, augment=True)
    out = cd(model, torch.randn(64, 1, 4, 4), None, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.per_sample).all() and "nn_log_dist" in out.stats


def test_cd_run_samples_and_has_an_energy(tmp_path):
    d = tmp_path / "cd"
    train(tiny_config(method="cd", langevin_steps=3, conditional=False, spectral_norm=True), d, progress=False)
    run = Run(d)
    assert run.default_sampler.sampler == "smc" and run.default_sampler.steps == 30  # trained as a density
    x, _ = run.sample(16, seed=0)
    assert x.shape == (16, 2) and torch.isfinite(x).all()
    assert run.energy(x).shape == (16,)
    xb, _ = run.sample(16, seed=0, start="buffer", batch_size=5)  # chains from the replay buffer
    assert xb.shape == (16, 2) and torch.isfinite(xb).all()
    assert torch.allclose(xb, run.sample(16, seed=0, start="buffer")[0], atol=1e-5)  # batch-size invariant
    for sampler in ("gd", "nag", "ode", "langevin"):  # every shared sampler takes the energy's field
        assert (
            main(["sample", str(d), "--n", "8", "--sampler", sampler, "--out", str(tmp_path / f"{sampler}.npy")]) == 0
        )
    assert main(["plot", str(d), "--n", "50", "--out", str(tmp_path / "p.png")]) == 0
    from PIL import Image

    width, height = Image.open(tmp_path / "p.png").size
    assert width > 3 * height  # three panels: the density exp(-E), the energy E and the samples


def test_buffer_start_needs_a_cd_run(tiny_run):
    with pytest.raises(ConfigError, match="only cd runs keep a replay buffer"):
        Run(tiny_run).sample(4, start="buffer")


def test_cd_cli_errors(tmp_path, capsys):
    assert main(["train", "--method", "cd", "--icd-augment", "--out", str(tmp_path / "a"), "--steps", "2"]) == 2
    assert "--icd-augment shifts images; the data are not images" in capsys.readouterr().err
    assert main(["train", "--method", "cd", "--buffer-reinit", "2", "--out", str(tmp_path / "b")]) == 2
    assert "buffer-reinit must be in [0, 1]" in capsys.readouterr().err
    mh = ["train", "--method", "cd", "--langevin-mh", "--steps", "2"]
    assert main([*mh, "--icd-kl", "1", "--out", str(tmp_path / "c")]) == 2
    assert "--langevin-mh corrects exact Langevin only" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")


def test_metropolis_adjusted_training_chains_log_their_acceptance():
    torch.manual_seed(0)
    model = ScalarEnergy(MLP(NetSpec((2,), scalar=True), width=16, depth=2))
    buf = ReplayBuffer(100, (2,), reinit=0.2, box=(-1.0, 1.0), seed=0, init="normal")
    cd = ContrastiveDivergence(buffer=buf, steps=5, step=0.002, noise=0.002**0.5 * 2**0.5, energy_reg=0.01, mh=True)
    out = cd(model, torch.randn(64, 2), None, torch.Generator().manual_seed(0))
    assert out.per_sample.shape == (64,) and 0.5 < out.stats["accept"] <= 1
    with pytest.raises(ConfigError, match="exact Langevin only"):
        ContrastiveDivergence(buffer=buf, steps=5, step=0.002, noise=0.01, mh=True)


def test_data_jumps_carry_the_energys_mode_weights_not_the_datas():
    # two wells at -2 and +2 (std 0.3) with weights 0.2 / 0.8; the data and the starts weight them 1/2 each.
    # Langevin cannot cross the barrier; independence jumps to the data plus noise are exact Metropolis-Hastings
    # moves for exp(-E), so the chains take the energy's weights
    def energy(x, t=None, y=None):
        d = torch.stack([(x + 2).pow(2).sum(1), (x - 2).pow(2).sum(1)], 1) / (2 * 0.09)
        return -torch.logsumexp(-d + torch.tensor([0.2, 0.8]).log(), 1)

    g = torch.Generator().manual_seed(0)
    data = torch.cat([torch.full((50, 1), -2.0), torch.full((50, 1), 2.0)]) + 0.3 * torch.randn(100, 1, generator=g)
    x = torch.cat([torch.full((2000, 1), -2.0), torch.full((2000, 1), 2.0)]) + 0.3 * torch.randn(4000, 1, generator=g)
    rates = []
    for _ in range(60):
        x, accepted = data_jump(energy, x, None, data, g)
        rates.append(accepted.float().mean())
    assert abs((x > 0).float().mean() - 0.8) < 0.03
    right = x[x > 0]
    assert abs(right.mean() - 2) < 0.03 and abs(right.std() - 0.3) < 0.03  # each well keeps its shape
    assert 0.2 < float(torch.stack(rates).mean()) < 0.9


def test_cd_with_data_jumps_logs_their_acceptance():
    torch.manual_seed(0)
    model = ScalarEnergy(MLP(NetSpec((2,), scalar=True), width=16, depth=2))
    buf = ReplayBuffer(100, (2,), reinit=0.2, box=(-1.0, 1.0), seed=0, init="data")
    cd = ContrastiveDivergence(buffer=buf, steps=5, step=0.002, noise=0.002**0.5 * 2**0.5, energy_reg=0.01,
                               jump=True)  # fmt: skip
    out = cd(model, torch.randn(64, 2), None, torch.Generator().manual_seed(0))
    assert out.per_sample.shape == (64,) and 0 < out.stats["jump"] <= 1


def test_cd_defaults_follow_the_data(tmp_path):
    from energen.config import TrainConfig
    from energen.methods import saved_config
    from energen.methods.registry import METHODS

    cd = METHODS.get("cd")
    vec = cd.resolve(TrainConfig(method="cd"), (2,))
    assert (vec.langevin_noise, vec.langevin_clip, vec.langevin_clamp) == ((2 * vec.langevin_step) ** 0.5, 0.0, False)
    assert vec.adam_beta1 == 0.0 and vec.energy_reg < 1 and vec.data_scale == 6.0 and vec.buffer_init == "data"
    assert vec.langevin_mh and vec.data_jumps  # vectors: chains that sample exp(-E), jumping between modes
    icd = cd.resolve(TrainConfig(method="cd", icd_kl=1.0), (2,))
    assert not icd.langevin_mh and icd.data_jumps  # ICD's chain is not Metropolis-adjusted: the default gives way
    assert not cd.resolve(TrainConfig(method="cd", langevin_noise=0.01), (2,)).langevin_mh
    assert vec.buffer_reinit == 0.2 and cd.resolve(TrainConfig(method="cd"), (1, 8, 8)).buffer_reinit == 0.05
    img = cd.resolve(TrainConfig(method="cd", langevin_step=1.0), (1, 8, 8))
    assert not img.langevin_mh and not img.data_jumps
    assert img.langevin_step == 1.0 and img.langevin_clip > 0 and img.langevin_clamp and img.energy_reg == 1.0
    assert (
        img.buffer_init == "uniform"
        and cd.resolve(TrainConfig(method="cd", buffer_init="uniform"), (2,)).buffer_init == "uniform"
    )
    assert img.data_scale == 1.0 and cd.resolve(TrainConfig(method="cd", data_scale=2.0), (2,)).data_scale == 2.0
    assert METHODS.get("eqm").resolve(TrainConfig(), (2,)).adam_beta1 == 0.9
    # a run saved before these options trained with Adam's 0.9 and a clamped, unclipped chain
    # on unscaled inputs, with fresh chains uniform in the box
    old = TrainConfig(method="cd", langevin_step=0.005, energy_reg=1.0).to_json()
    for k in ("adam_beta1", "adam_beta2", "langevin_clamp"):
        old.pop(k)
    (tmp_path / "config.json").write_text(__import__("json").dumps(old))
    cfg = saved_config(tmp_path)
    assert (cfg.adam_beta1, cfg.langevin_clamp, cfg.langevin_clip, cfg.data_scale) == (0.9, True, 0.0, 1.0)
    assert cfg.buffer_init == "uniform" and cfg.langevin_mh is False and cfg.data_jumps is False


def test_scaled_energy_is_the_network_on_scaled_inputs():
    from energen.networks.base import NetSpec
    from energen.networks.energy import ScalarEnergy, spectral_normalise
    from energen.networks.mlp import MLP

    torch.manual_seed(0)
    net = spectral_normalise(MLP(NetSpec((2,), scalar=True), width=16, depth=1)).eval()
    model = ScalarEnergy(net, data_scale=3.0)
    x = torch.randn(5, 2, dtype=torch.float64)
    net.double()
    assert torch.allclose(model.energy(x), net(3 * x), atol=1e-12)
    xs = (3 * x).requires_grad_(True)
    grad_net = torch.autograd.grad(net(xs).sum(), xs)[0]
    assert torch.allclose(model(x), -3 * grad_net, atol=1e-10)  # the field is -grad_x E = -3 (grad net)(3x)
