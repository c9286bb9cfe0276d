"""Rank helpers and data parallelism. A world of size 1 needs no process group, so the core runs on one CPU unchanged.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`init` starts a process group: NCCL when CUDA is in use,
gloo otherwise, and :class:`ParallelObjective` spreads the training step over it with torch's own machinery:

- ``ddp`` (the default): :class:`~torch.nn.parallel.DistributedDataParallel`. Gradients are averaged in
  buckets while the backward pass is still running, written straight into the parameters' ``.grad``.
- ``fsdp``: FSDP2 (:func:`torch.distributed.fsdp.fully_shard`) for models whose optimiser state does not
  fit on one device: parameters, gradients and AdamW moments are sharded over the ranks between steps;
  the parameters are gathered for the step and the gradients reduce-scattered after it.

What is wrapped is the *objective*, not the network (:class:`ObjectiveModule`). Objectives call their model
many times per step and through methods other than ``forward``: recovery likelihood runs Langevin chains on
``model.conditional_energy`` between its positive and negative passes and asks ``model.propose``;
contrastive divergence runs chains on ``model.energy`` with the model in ``eval`` mode and differentiates
through the last chain step (Improved CD); EqM-E's field is an energy gradient trained by double backward.
A DDP or FSDP wrapper around the network would see only ``forward``, or one forward per chain step.
Around the objective it sees exactly one forward and one backward per optimiser step, and every call
inside reaches the plain network. Chain steps take gradients with respect to their inputs only
(``torch.autograd.grad``), which runs none of the parameters' gradient hooks, so only the loss's own
backward is reduced. Parameters that a step leaves without a gradient are found by
``find_unused_parameters``; they keep no gradient, as in one process. The state dict names stay those of
the plain network: checkpoints store the network, never the wrapper.

Under ``fsdp`` the whole network is one FSDP unit at the root, so its parameters are gathered once at the
start of the step and stay whole until the gradients are reduce-scattered at the end of its backward: the
chains, ``eval``-mode calls and the double backward of EqM-E all run on whole parameters. What is sharded
between steps is what dominates memory in training: the AdamW moments, the gradients and the fp32 weights.
Sharding each block as its own unit (to also free whole weights during the step) does not work with these
objectives: with every ``nn.ModuleList`` entry of the MLP a unit, EqM still matched one process, but EqM-E
crashed (its double backward reaches weights freed after the inner backward) and recovery likelihood and
contrastive divergence failed (their chains call blocks after their weights were resharded). Checkpoints
gather full state dicts on rank 0 (:func:`full_model_state`, :func:`full_optimizer_state`).

``tests/training/test_distributed.py`` checks both kinds against one process on the same global batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import PARALLEL
from ..errors import ConfigError
from ..losses.base import LossOutput

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


def broadcast_module(module: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if dist.is_initialized():
        for t in module.state_dict().values():
            dist.broadcast(t, 0)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# --- data parallelism -----------------------------------------------------------------------------------------


class ObjectiveModule(nn.Module):
    """``objective(model, x, y, generator)`` as one module call, so that DDP and FSDP see one forward per step.

    ``model`` is the plain network (a submodule: the wrapper's parameters are the network's); ``objective``
    is an ordinary attribute (its state, a replay buffer, is each rank's own). The forward returns the
    :class:`~energen.losses.base.LossOutput`'s fields as a tuple, which DDP searches for the loss tensor.
    """

    def __init__(self, model: nn.Module, objective: Callable[..., LossOutput]):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: Tensor, y: Tensor | None, generator: torch.Generator):
        out = self.objective(self.model, x, y, generator)
        return out.per_sample, out.stats, out.problem


class ParallelObjective:
    """The training step's forward, spread over the ranks: ``step(x, y, generator) -> LossOutput`` with ``x``,
    ``y`` the rank's slice of the batch. The following ``per_sample.mean().backward()`` leaves every rank the
    gradient of the mean over the whole batch (exactly so when the ranks' slices are of one size).

    With one process, or ``kind`` ``None``, the objective is called on the network as it is. Under ``ddp`` each
    process prints torch's note once that ``find_unused_parameters`` found no unused parameter: it is on so that a
    network or objective that leaves a parameter without a gradient in some step does not stall the reduction
    (the cost: one traversal of the loss's graph per step).
    """

    def __init__(self, model: nn.Module, objective: Callable[..., LossOutput], kind: str | None, device: torch.device):
        if kind is not None and kind not in PARALLEL:
            raise ValueError(f"parallel must be one of {', '.join(PARALLEL)}, got {kind!r}")
        self.model, self.objective = model, objective
        self.kind = kind if world_size() > 1 else None
        self.wrapped: nn.Module | None = None
        if self.kind == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            self.wrapped = DistributedDataParallel(
                ObjectiveModule(model, objective), device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True, gradient_as_bucket_view=True,
            )  # fmt: skip
        elif self.kind == "fsdp":
            try:
                from torch.distributed.fsdp import fully_shard
            except ImportError:
                raise ConfigError(f"--parallel fsdp needs torch >= 2.6, not {torch.__version__}") from None
            self.mesh = _mesh(device)
            self.wrapped = ObjectiveModule(model, objective)
            fully_shard(self.wrapped, mesh=self.mesh)

    @property
    def sharded(self) -> bool:
        return self.kind == "fsdp"

    def __call__(self, x: Tensor, y: Tensor | None, generator: torch.Generator) -> LossOutput:
        if self.wrapped is None:
            return self.objective(self.model, x, y, generator)
        per_sample, stats, problem = self.wrapped(x, y, generator)
        return LossOutput(per_sample=per_sample, stats=stats, problem=problem)

    def shard_like(self, module: nn.Module) -> None:
        """Under ``fsdp``, shard ``module`` (a copy of the network: the EMA) as the network is, so that the two
        can be combined parameter by parameter; a no-op otherwise. Its forward is never called."""
        if self.sharded:
            from torch.distributed.fsdp import fully_shard

            fully_shard(module, mesh=self.mesh)


def _mesh(device: torch.device):
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (world_size(),))


def _dtensor() -> type | None:
    """The class of FSDP2's sharded tensors, or None on a torch without it (so no tensor is one)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:
        return None
    return DTensor


def _is_sharded(module: nn.Module) -> bool:
    dtensor = _dtensor()
    return dtensor is not None and any(isinstance(p, dtensor) for p in module.parameters())


def full_tensor(t: Tensor) -> Tensor:
    """A sharded tensor (a DTensor: an FSDP gradient norm) made whole on every rank; others as they are."""
    dtensor = _dtensor()
    return t.full_tensor() if dtensor is not None and isinstance(t, dtensor) else t


def full_model_state(module: nn.Module) -> dict[str, Tensor]:
    """``module.state_dict()``; for a sharded module the full tensors, on the CPU of rank 0 (an empty dict on the
    other ranks). Every rank must call it."""
    if not _is_sharded(module):
        return module.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """``opt.state_dict()`` (moments keyed by parameter index); under FSDP the full tensors on rank 0, gathered
    with ``get_optimizer_state_dict`` (an empty state on the other ranks). Every rank must call it."""
    if not _is_sharded(model):
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not is_main():
        return {"state": {}, "param_groups": []}
    index = _fqn_index(model, opt)
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in sd["param_groups"]]
    return {"state": {index[n]: st for n, st in sd["state"].items()}, "param_groups": groups}


def load_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, sd: dict) -> None:
    """Load a state saved by :func:`full_optimizer_state` (or ``opt.state_dict()``), sharding it under FSDP."""
    if not _is_sharded(model):
        opt.load_state_dict(sd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    name = {i: n for n, i in _fqn_index(model, opt).items()}
    if len(sd["param_groups"]) != len(opt.param_groups) or {
        len(g["params"]) for g in sd["param_groups"]
    } != {len(g["params"]) for g in opt.param_groups}:  # fmt: skip
        raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's")
    groups = [{**g, "params": [name[i] for i in g["params"]]} for g in sd["param_groups"]]
    by_name = {"state": {name[int(i)]: st for i, st in sd["state"].items()}, "param_groups": groups}
    opt.zero_grad(set_to_none=True)  # torch builds the sharded moments by a zero step, only on parameters without grads
    set_optimizer_state_dict(model, opt, by_name, options=StateDictOptions(full_state_dict=True))


def _fqn_index(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, int]:
    """Parameter name -> index in ``opt.state_dict()`` (parameters numbered through the groups in order)."""
    names = {id(p): n for n, p in model.named_parameters()}
    params = [p for g in opt.param_groups for p in g["params"]]
    return {names[id(p)]: i for i, p in enumerate(params)}
