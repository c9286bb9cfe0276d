"""Thin rank helpers. A world of size 1 needs no process group, so the core runs on one CPU unchanged.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`init` starts a process group: NCCL when CUDA is in use,
gloo otherwise.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

_device = torch.device("cpu")  # where collective tensors live: NCCL needs them on the GPU


def init(device: torch.device) -> None:
    global _device
    _device = device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_ok(ok: bool) -> bool:
    """True on every rank only if ``ok`` is True on every rank (so all ranks stop together)."""
    if not dist.is_initialized():
        return ok
    t = torch.tensor([1.0 if ok else 0.0], device=_device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_to_main(obj) -> list | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; ``None`` on the others."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if dist.is_initialized():
        for t in module.state_dict().values():
            dist.broadcast(t, 0)


def average_gradients(params) -> None:
    """Average the gradients of ``params`` over ranks in one flat all-reduce (data parallelism).

    Done after the backward rather than by DistributedDataParallel's hooks, so that objectives may call
    their model several times and reach its parts (recovery likelihood runs Langevin chains on the model
    between its positive and negative passes). A missing gradient counts as zero.
    """
    if not dist.is_initialized():
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world_size()
    for g, f in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(f)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
