"""Data-parallel helpers on PyTorch's own engine: the process group torchrun describes, ranks,
rank-aware logging, metric reduction, sharded loaders, and the strategy `fit` trains with.

Every helper also works in a plain single process (rank 0 of 1), so one training script runs
unchanged with `python train.py` and with `torchrun --nproc-per-node 4 train.py`. `fit` asks
`current_strategy()` how to train: `SingleProcess` (every hook does nothing) or
`DistributedDataParallel` (wrap the model, shard the data, sum the metrics over ranks).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as TorchDDP
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler

if dist.is_available():
    # torch.distributed.nn.functional binds `group.WORLD` as a default argument when it is first
    # imported, which DistributedDataParallel does lazily. Imported while a process group is up,
    # it keeps that group alive after destroy_process_group: gloo's threads then run into
    # interpreter shutdown and abort the process at exit ("terminate called without an active
    # exception"). Imported here, before any group exists, it binds None.
    import torch.distributed.nn  # noqa: F401

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True when this process was started by torchrun (its rendezvous variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def is_distributed() -> bool:
    """True when a process group is up and has more than one member."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes in the group (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    """This process's rank on its own machine (torchrun's LOCAL_RANK, 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True on rank 0, the process that logs, plots and writes checkpoints."""
    return rank() == 0


def default_backend() -> str:
    """NCCL when every process on this machine has a CUDA device of its own, gloo otherwise
    (CPUs, macOS, Windows, or more processes than GPUs). `$DLNB_DIST_BACKEND` overrides it."""
    forced = os.environ.get("DLNB_DIST_BACKEND")
    if forced:
        return forced
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if torch.cuda.is_available() and per_machine <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


def init_distributed(backend: str | None = None, timeout_s: float = 600.0) -> bool:
    """Join the process group torchrun describes in its env vars; False (no-op) in a plain run."""
    if dist.is_available() and dist.is_initialized():
        return True
    if not launched_by_torchrun():
        return False
    if not dist.is_available():
        raise RuntimeError(
            "This PyTorch build has no torch.distributed; install an official PyTorch wheel "
            "to train with torchrun."
        )
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return True


def teardown_distributed() -> None:
    """Leave the process group (waiting for the other ranks first); a no-op without one."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(backend: str | None = None) -> Iterator[bool]:
    """`with process_group() as ddp:` joins torchrun's group (if any) and always leaves it."""
    joined = init_distributed(backend)
    try:
        yield joined
    except BaseException:
        if joined and dist.is_initialized():
            dist.destroy_process_group()  # no barrier: the other ranks may be gone
        raise
    if joined:
        teardown_distributed()


def barrier() -> None:
    """Wait until every rank gets here; a no-op in a single process."""
    if is_distributed():
        dist.barrier()


def rank_device(device: torch.device) -> torch.device:
    """The device this rank should use: `cuda` becomes `cuda:<LOCAL_RANK>` under torchrun."""
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        return torch.device("cuda", local_rank() % max(1, torch.cuda.device_count()))
    return device


def wrap_ddp(model: nn.Module, device: torch.device) -> TorchDDP:
    """Wrap `model` in DistributedDataParallel (gradients are averaged across ranks in backward)."""
    ids = (
        [device.index if device.index is not None else local_rank()]
        if device.type == "cuda"
        else None
    )
    return TorchDDP(model, device_ids=ids)


def sync_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BatchNorm statistics) to every rank, so all evaluate one model."""
    if is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src)


def log(*parts: Any, all_ranks: bool = False) -> None:
    """Print on rank 0 only (or on every rank with `all_ranks=True`, prefixed by the rank)."""
    if all_ranks and world_size() > 1:
        print(f"[rank {rank()}/{world_size()}]", *parts, flush=True)
    elif is_main_process():
        print(*parts, flush=True)


def _reduce_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: dict[str, float]) -> dict[str, float]:
    """Sum each number over all ranks (one collective call); unchanged in a single process."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    packed = torch.tensor(
        [float(values[k]) for k in keys], dtype=torch.float64, device=_reduce_device()
    )
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return dict(zip(keys, packed.tolist(), strict=True))


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average each number over all ranks (unweighted); unchanged in a single process."""
    totals = all_reduce_sum(values)
    return {k: v / world_size() for k, v in totals.items()}


def shard_loader(
    loader: Any, *, train: bool, seed: int = 0, ranks: tuple[int, int] | None = None
) -> Any:
    """Give this rank its share of a loader: a DistributedSampler for training, a strided,
    unpadded slice for evaluation (so reduced metrics count every example exactly once).

    `ranks` is `(rank, world_size)`, by default this process's place in the group. A loader
    with a `.shard(rank, world, even)` method (like `GpuLoader`) shards itself.
    """
    rank_, world = ranks if ranks is not None else (rank(), world_size())
    if hasattr(loader, "shard"):
        return loader.shard(rank_, world, even=train)
    _check_shardable(loader)
    if train:
        sampler: Any = DistributedSampler(
            loader.dataset,
            num_replicas=world,
            rank=rank_,
            shuffle=isinstance(loader.sampler, RandomSampler),
            seed=seed,
            drop_last=loader.drop_last,
        )
    else:
        sampler = range(rank_, len(loader.dataset), world)
    return _with_sampler(loader, sampler)


def _check_shardable(loader: Any) -> None:
    """Raise a clear error when `loader` cannot be given a per-rank sampler."""
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"Cannot shard a {type(loader).__name__} across processes; pass a "
            "torch.utils.data.DataLoader or a loader with a .shard(rank, world) method."
        )
    if loader.batch_size is None:
        raise TypeError(
            "Cannot shard a DataLoader built with a custom batch_sampler; build it with "
            "batch_size=... so each rank can get a DistributedSampler."
        )
    if not isinstance(loader.dataset, Sized):
        raise TypeError(
            "Cannot shard a DataLoader over a dataset without a length (an IterableDataset); "
            "give each rank its own part of the stream, or use a map-style dataset."
        )


def _with_sampler(loader: DataLoader, sampler: Any) -> DataLoader:
    """A copy of `loader` that draws its examples from `sampler`."""
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers,
        prefetch_factor=loader.prefetch_factor if loader.num_workers > 0 else None,
    )


def set_epoch(loader: Any, epoch: int) -> None:
    """Tell a loader (or its sampler) which epoch starts, so each epoch shuffles differently."""
    for target in (loader, getattr(loader, "sampler", None)):
        if target is not None and hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
            return


# --- how fit trains: one process, or one of many -------------------------------------------------


class SingleProcess:
    """How `fit` trains in one process: every hook leaves the run as it is.

    The base of the strategies: `DistributedDataParallel` overrides each hook.
    """

    def __init__(self) -> None:
        self.rank, self.world_size = 0, 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs, plots and writes checkpoints (rank 0)."""
        return self.rank == 0

    def prepare_loaders(self, train: Any, valid: Any, seed: int) -> tuple[Any, Any]:
        """This process's share of the training and validation loaders: all of them."""
        return train, valid

    def set_epoch(self, loader: Any, epoch: int) -> None:
        """Tell `loader` (or its sampler) which epoch starts, so each epoch shuffles differently."""
        set_epoch(loader, epoch)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module the training steps call: `model` itself."""
        return model

    def no_sync(self, wrapped: nn.Module) -> AbstractContextManager[Any]:
        """A context for a micro-batch whose gradients need no averaging yet: nothing to skip."""
        return nullcontext()

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers before evaluating: one process has them already."""

    def reduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each number summed over the ranks: the numbers as they are."""
        return dict(values)

    def any_rank(self, flag: bool) -> bool:
        """Whether `flag` is set on any rank (one rank's callback stopping stops them all)."""
        return flag

    def barrier(self) -> None:
        """Wait until every rank gets here: there is no other."""

    def log_start(self, train_loader: Any, device: torch.device) -> None:
        """Say how the run is split across processes: nothing to say in one."""


class DistributedDataParallel(SingleProcess):
    """How `fit` trains in each process of a group: torch's DistributedDataParallel averages the
    gradients, each rank trains on its shard of the data (the loader's batch size is per rank),
    metrics are summed over the ranks, and rank 0 logs and writes checkpoints."""

    def __init__(self) -> None:
        self.rank, self.world_size = rank(), world_size()

    def prepare_loaders(self, train: Any, valid: Any, seed: int) -> tuple[Any, Any]:
        """This rank's shard of the training loader and its slice of the validation loader."""
        train = shard_loader(train, train=True, seed=seed)
        return train, shard_loader(valid, train=False) if valid is not None else None

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """`model` in torch's DistributedDataParallel (gradients are averaged in backward)."""
        return wrap_ddp(model, device)

    def no_sync(self, wrapped: nn.Module) -> AbstractContextManager[Any]:
        """Skip the gradient averaging of `wrapped` (what `wrap` returned) for this micro-batch."""
        if not isinstance(wrapped, TorchDDP):
            raise TypeError(f"no_sync needs the module wrap() returned, not a {type(wrapped)}.")
        return wrapped.no_sync()

    def sync_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm statistics) to every rank, so all evaluate one model."""
        sync_buffers(model)

    def reduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each number summed over the ranks (one collective call)."""
        return all_reduce_sum(values)

    def any_rank(self, flag: bool) -> bool:
        """Whether `flag` is set on any rank (one rank's callback stopping stops them all)."""
        return all_reduce_sum({"flag": float(flag)})["flag"] > 0

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        barrier()

    def log_start(self, train_loader: Any, device: torch.device) -> None:
        """Print (on rank 0) how many processes train, and on how many examples each."""
        log(
            f"DDP: {self.world_size} processes, {getattr(train_loader, 'batch_size', '?')} "
            f"examples per rank per batch, {device.type} devices"
        )


def current_strategy() -> SingleProcess:
    """How this process trains: `DistributedDataParallel` in a process group of several
    processes, else `SingleProcess`."""
    return DistributedDataParallel() if is_distributed() else SingleProcess()
