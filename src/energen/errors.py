"""User-facing errors.

Anything the user can fix (a bad flag, a missing file, a corrupt checkpoint, data with NaN) raises a
subclass of :class:`EnergenError`. The CLI prints its message as one line and exits with ``exit_code``;
library users catch it like any exception. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class EnergenError(Exception):
    """A problem with the user's input, reported as one line."""

    exit_code = 2


class ConfigError(EnergenError):
    """An unknown choice, a value out of range, or an inconsistent set of options."""


class DataError(EnergenError):
    """A data set that is missing, unreadable, of the wrong shape, or holds non-finite values."""


class CheckpointError(EnergenError):
    """A run directory or checkpoint that is missing, corrupt, truncated or not safetensors."""


class TrainingDiverged(EnergenError):
    """The loss became NaN or infinite; the message names the step."""

    exit_code = 1
