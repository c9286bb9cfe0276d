"""The sampler flags of sample, denoise, inpaint, compose and translate, and the settings they give.

Each flag sets the option of the same name of the chosen sampler's typed settings
(:mod:`energen.samplers.settings`); a flag the sampler does not use is refused with one line. The step size is
eta for every sampler.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import ConfigError
from .options import nonneg_float, positive_float, positive_int

OPTION_FLAGS = ("tol", "momentum", "noise", "ode_method", "temperature")  # flags named as the settings' options


def add_sampler_args(s: argparse.ArgumentParser) -> None:
    from ..samplers.ode import ODE_METHODS
    from ..samplers.registry import SAMPLERS

    g = s.add_argument_group("sampler (default: the run's own; a flag the chosen sampler does not use is refused)")
    g.add_argument("--sampler", choices=SAMPLERS.names(),
                   help="eqm/eqm-e: calibrated gd; fm: Euler (gd); drl/cdrl: recovery through the levels; "
                   "cd: smc (vectors) or langevin (images)")  # fmt: skip
    g.add_argument("--steps", type=positive_int,
                   help="step count K; gd, nag, langevin, ode keep the run's total time eta*K unless --step-size is "
                   "given; smc: the path's length at the same eta; recovery: Langevin steps per level")  # fmt: skip
    g.add_argument(
        "--langevin-steps",
        type=positive_int,
        help="recovery: Langevin steps per level K (each level's eta scaled by K_train/K, so K*eta stays)",
    )
    g.add_argument("--step-size", type=positive_float, metavar="ETA",
                   help="step size eta of every step sampler: x <- x + eta*f (gd, nag), + sqrt(2*eta*T)*z "
                   "(langevin), the Metropolis-adjusted proposal of smc; ode: integrates for time eta*K; not recovery "
                   "(its steps come from the run's levels)")  # fmt: skip
    g.add_argument(
        "--temperature",
        type=nonneg_float,
        metavar="T",
        help="langevin, recovery: temperature T (noise sqrt(2*eta*T); 1 samples exp(-E), 0 descends)",
    )
    g.add_argument("--tol", type=positive_float, help="gd, nag, langevin: stop a sample once RMS(field) < TOL")
    g.add_argument("--momentum", type=float, help="nag: Nesterov momentum mu (default 0.3)")
    g.add_argument("--noise", type=nonneg_float,
                   help="gd, nag: initial noise scale, annealed to 0 (x += sqrt(2*eta)*noise_k*z)")  # fmt: skip
    g.add_argument("--ode-method", choices=ODE_METHODS, help="ode: the torchdiffeq method (default heun2)")


def add_guidance_args(s: argparse.ArgumentParser, cfg_help: str) -> None:
    """``--cfg`` (the guidance weight) and ``--guidance`` (its rule) of the commands that take classes."""
    from ..fields import GUIDANCE_RULES

    s.add_argument("--cfg", type=float, help=cfg_help)
    s.add_argument("--guidance", choices=GUIDANCE_RULES,
                   help="with --cfg: guide every entry for every weight (all), or the EqM reference's rule, "
                   "channels 0-2 and only for a weight > 1 (reference); default: reference for EqM on VAE "
                   "latents, else all")  # fmt: skip


def sampler_settings(run, a: argparse.Namespace, base=None):
    """The run's default sampler (or ``base``), switched to ``--sampler`` and changed by the other sampler flags of
    ``a``; a flag the resulting sampler does not use raises :class:`~energen.errors.ConfigError`. ``--guidance``
    sets the run's guidance rule."""
    settings = dataclasses.replace(base or run.default_sampler, extra={})
    if a.sampler is not None:
        settings = run.switch_sampler(settings, a.sampler)
    changes = {}
    if a.langevin_steps is not None:
        if not settings.walks_levels:
            raise ConfigError("--langevin-steps sets the steps per noise level of the recovery sampler (drl, cdrl)")
        changes["steps"] = a.langevin_steps
    if a.steps is not None:
        changes["steps"] = a.steps
        if settings.keeps_time and a.step_size is None:  # the same total time eta*K
            changes["step_size"] = settings.steps * settings.step_size / a.steps
    if a.step_size is not None:
        changes["step_size"] = a.step_size
    changes |= {k: getattr(a, k) for k in OPTION_FLAGS if getattr(a, k) is not None}
    new = settings.with_options(**changes)
    classes = getattr(a, "label", None) is not None or getattr(a, "random_classes", False)
    if getattr(a, "cfg", None) is not None and not classes:  # sample, inpaint
        raise ConfigError("--cfg needs --class (or --random-classes)")
    if getattr(a, "guidance", None) is not None:
        if a.cfg is None:
            raise ConfigError("--guidance is the rule of --cfg; pass --cfg too")
        run.guidance = a.guidance
    return new
