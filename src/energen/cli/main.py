"""The ``energen`` command line: train, sample, eval, plot, demo, and the tasks: denoise, inpaint, ood,
compose, translate.

Parsing is strict: an unknown flag or a bad value prints one line and exits with status 2 (argparse's
convention). Problems with files, data or checkpoints print ``energen: error: ...`` and exit non-zero
without touching existing files. An operating-system error met while working (a full disk, a read-only
folder) prints ``energen CMD: <reason>: <file>`` and exits 1, without a traceback.

Each command lives in its own module (``train``, ``sample``, ``tasks``, ``tools``), which registers its parser;
the work itself is done by library functions.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import EnergenError
from . import sample, tasks, tools, train


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="energen", description="Energy-based generative modelling: train, sample, evaluate, plot.")
    p.add_argument("--version", action="version", version=f"energen {__import__('energen').__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (train, sample, tasks, tools):
        module.register(sub)
    return p


def _fail(command: str, e: EnergenError) -> int:
    print(f"energen {command}: error: {e}", file=sys.stderr)
    return e.exit_code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except EnergenError as e:  # a train option out of its range, found while parsing
        return _fail(next((x for x in argv if not x.startswith("-")), ""), e)
    try:
        return a.func(a)
    except EnergenError as e:
        return _fail(a.command, e)
    except KeyboardInterrupt:
        print(f"energen {a.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a read-only folder, a missing file, found deep inside the work
        print(f"energen {a.command}: {_os_error(e)}", file=sys.stderr)
        return 1


def _os_error(e: OSError) -> str:
    """``strerror: filename`` of an OSError (``No space left on device: out.npy``), on one line."""
    text = e.strerror or str(e) or type(e).__name__
    names = [str(f) for f in (e.filename, e.filename2) if f is not None]
    return " ".join(f"{text}: {' -> '.join(names)}".split()) if names else " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
