"""Argument helpers shared by the commands: number types with a range, the output check, common flags."""

from __future__ import annotations

import argparse

from ..generation import check_new_output

__all__ = ["add_common_args", "add_task_args", "check_new_output", "nonneg_float", "positive_float", "positive_int"]


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def positive_float(s: str) -> float:
    v = float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
    return v


def nonneg_float(s: str) -> float:
    v = float(s)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def add_common_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--seed", type=int, default=0, help="sample i uses the noise stream seeded SEED+i")
    s.add_argument("--batch-size", type=positive_int, default=1000)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def add_task_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--png", help="also write a picture: image grid (images) or scatter plot (2-D)")
    add_common_args(s)
