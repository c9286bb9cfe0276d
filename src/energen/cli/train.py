"""``energen train``: its flags are generated from :class:`~energen.config.TrainConfig` (help, defaults, ranges and
groups are declared there); the names chosen from a registry get their choices here."""

from __future__ import annotations

import argparse
import json

from ..config import TrainConfig, add_config_arguments, explicit_options, read_config_file


def registry_choices() -> dict[str, list[str]]:
    """The allowed values of the TrainConfig fields that name a registry entry."""
    from ..interpolants import WEIGHTINGS
    from ..methods import METHODS
    from ..networks import MODELS

    return {"method": METHODS.names(), "model": ["auto", *MODELS.names()], "init_model": MODELS.names(),
            "c_schedule": WEIGHTINGS.names()}  # fmt: skip


def register(sub) -> None:
    about = ("Train a model into a run directory. Options come, in increasing priority, from the defaults shown, "
             "a --config file and the flags given; 'auto' defaults are chosen from the method and the data, and "
             "config.json in the run directory records the values used.")  # fmt: skip
    t = sub.add_parser("train", help="train a model into a run directory", description=about)
    run = t.add_argument_group("run directory and config file")
    run.add_argument("--out", required=True, help="run directory (must be new or empty unless --resume)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out to --steps")
    run.add_argument("--config", help="JSON or YAML file of options; flags given here override it")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(t, registry_choices())
    t.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    from ..training.loop import check_names, train

    explicit = explicit_options(a)
    base = read_config_file(a.config) if a.config else {}
    cfg = TrainConfig.from_dict(base | explicit, where=a.config or "options")
    if not a.resume:
        check_names(cfg)
        cfg.validate()
    res = train(cfg, a.out, resume=a.resume, overrides=base | explicit, progress=not a.quiet)
    print(json.dumps({"run_dir": str(res.run_dir), "step": res.step, "final_loss": res.final_loss}))
    return 0
