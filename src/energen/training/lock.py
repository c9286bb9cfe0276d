"""An exclusive lock on a run directory, so that two trainers never write into the same one.

The lock is an advisory ``fcntl.flock`` on ``RUN_DIR/.lock``, taken without waiting. It is held for the
whole of :func:`energen.train` and released when the process exits in any way (the operating system
drops a dead process's locks, so a killed trainer never leaves a stale lock behind). The file holds the
holder's process id, which the refusal names. Readers (``energen sample``, the tasks) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: Path, advice: str = "wait for it to finish or choose another --out") -> Iterator[None]:
    """Hold the exclusive lock on ``run_dir`` (created if missing) for the body; raise :class:`ConfigError`
    (one line, naming the holder's pid and ending with ``advice``) when another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(f"{run_dir} is in use by another process (pid {holder}); {advice}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
