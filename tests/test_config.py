"""TrainConfig as the one source of every option's default, help, group, range and choices."""

import ast
import math
from dataclasses import fields
from pathlib import Path

import pytest

import energen.config as config
from energen.config import GROUPS, TrainConfig, default_text, option, within
from energen.errors import ConfigError

FIELDS = fields(TrainConfig)


def test_every_option_has_help_and_a_group():
    assert len(FIELDS) >= 25
    for f in FIELDS:
        assert len(f.metadata["help"]) > 5, f.name
        assert f.metadata["group"] in GROUPS, f.name
    assert {f.metadata["group"] for f in FIELDS} == set(GROUPS)  # no empty group in --help


def test_data_dependent_defaults_state_their_rule():
    for f in FIELDS:
        if f.default is None and f.name != "image_size" or f.default == "auto" and f.name != "device":
            assert f.metadata["auto"], f"{f.name}: a None/auto default needs its rule"
            assert default_text(f).startswith("auto: ")
    by_name = {f.name: f for f in FIELDS}
    assert default_text(by_name["steps"]) == "4000" and default_text(by_name["bf16"]) == "on"
    assert default_text(by_name["langevin_steps"]) == "auto: cdrl 15, drl 30, cd 20"


def test_defaults_are_valid():
    assert TrainConfig().validate() == TrainConfig()


@pytest.mark.parametrize(
    "valid, inside, outside",
    [(">= 1", [1, 7], [0, -1, math.nan]), ("> 0", [1e-9, 5.0], [0.0, -2.0]), ("[0, 1)", [0.0, 0.5], [1.0, -0.1]),
     ("[0, 1]", [0.0, 1.0], [1.01, -1e-9]), ("(0, 1]", [1.0], [0.0])],
)  # fmt: skip
def test_range_texts(valid, inside, outside):
    assert all(within(v, valid) for v in inside)
    assert not any(within(v, valid) for v in outside)


def test_a_malformed_range_or_group_fails_at_declaration():
    with pytest.raises(ValueError):
        option(1, "help", group=config.OPTIM, valid="at least 1")
    with pytest.raises(ValueError):
        option(1, "help", group="miscellaneous")


def _just_outside(valid: str) -> float:
    lo, lo_in, hi, hi_in = config._bounds(valid)
    if hi < math.inf:
        return hi + 0.5 if hi_in else hi
    return lo - 0.5 if lo_in else lo


def test_validate_checks_every_declared_range():
    ranged = [f for f in FIELDS if f.metadata["valid"] is not None]
    assert len(ranged) >= 25
    for f in ranged:
        flag = f.name.replace("_", "-")
        bad = _just_outside(f.metadata["valid"])
        value = int(bad) if f.type.startswith("int") and bad == int(bad) else bad
        with pytest.raises(ConfigError, match=f"^{flag} must be "):
            TrainConfig(**{f.name: value}).validate()


@pytest.mark.parametrize(
    "kw, message",
    [({"steps": 0}, "steps must be >= 1"), ({"ema_rampup": 1.5}, "ema-rampup must be in [0, 1]"),
     ({"label_dropout": 1.0}, "label-dropout must be in [0, 1)"), ({"lr": -1.0}, "lr must be > 0"),
     ({"buffer_reinit": 2.0}, "buffer-reinit must be in [0, 1]"), ({"calibrate_samples": 99}, "must be >= 100"),
     ({"energy": "cosine"}, "energy must be one of dot, l2, got 'cosine'"),
     ({"buffer_init": "zeros"}, "buffer-init must be one of uniform, normal, data"),
     ({"device": "tpu"}, "device must be one of auto, cpu, cuda")],
)  # fmt: skip
def test_validate_messages(kw, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw).validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_registry_names_are_left_to_the_registries():
    TrainConfig(method="no-such-method", model="no-such-model").validate()  # checked by the CLI and the loop


def test_config_imports_nothing_from_energen_but_errors():
    tree = ast.parse(Path(config.__file__).read_text())
    local = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    local += [n for n in ast.walk(tree) if isinstance(n, ast.Import) and any("energen" in a.name for a in n.names)]
    assert [getattr(n, "module", None) for n in local] == ["errors"]


def test_parse_flags_returns_only_the_options_given():
    assert TrainConfig.parse_flags([]) == {}
    got = TrainConfig.parse_flags(["--lr", "0.01", "--no-calibrate", "--langevin-steps", "5", "--energy", "l2"])
    assert got == {"lr": 0.01, "calibrate": False, "langevin_steps": 5, "energy": "l2"}
    assert isinstance(got["langevin_steps"], int)
    assert TrainConfig.parse_flags(["--method", "cd"], choices={"method": ["eqm", "cd"]}) == {"method": "cd"}


@pytest.mark.parametrize(
    "argv, message",
    [(["--bogus"], "unrecognized arguments: --bogus"), (["--lr", "-1"], "lr must be > 0, got -1"),
     (["--label-dropout", "1.5"], "label-dropout must be in [0, 1), got 1.5"), (["--steps", "ten"], "invalid int"),
     (["--energy", "cosine"], "invalid choice"), (["--out", "x"], "unrecognized arguments")],
)  # fmt: skip
def test_parse_flags_raises_config_errors(argv, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.parse_flags(argv)
    assert message in str(e.value)
    with pytest.raises(ConfigError, match="invalid choice"):
        TrainConfig.parse_flags(["--method", "nope"], choices={"method": ["eqm", "cd"]})


def test_flags_and_config_files_give_the_same_config(tmp_path):
    argv = ["--method", "cd", "--buffer-size", "500", "--no-spectral-norm", "--data-scale", "2"]
    (tmp_path / "c.yaml").write_text("method: cd\nbuffer-size: 500\nspectral_norm: false\ndata-scale: 2\n")
    from_file = TrainConfig.from_dict(config.read_config_file(str(tmp_path / "c.yaml")))
    assert TrainConfig.from_dict(TrainConfig.parse_flags(argv)) == from_file


def test_the_example_configs_are_valid():
    from pathlib import Path

    from energen.config import TrainConfig, read_config_file

    files = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert len(files) >= 2
    for f in files:
        cfg = TrainConfig(**read_config_file(str(f))).validate()
        assert cfg.method == "eqm" and cfg.hflip and cfg.gamma_power == 1.0 and cfg.c_a == 0.8
