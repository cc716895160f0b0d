"""Out-of-memory detection and the largest batch size that fits."""

from __future__ import annotations

import torch

from dlnb.runtime import pick_device, sync
from dlnb.train.precision import autocast, autocast_dtype

OOM_MESSAGES = ("out of memory", "can't allocate memory", "CUDNN_STATUS_NOT_SUPPORTED")


def _is_out_of_memory(error: BaseException) -> bool:
    """True for the errors that mean "this batch does not fit" on CUDA, MPS or the CPU."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in OOM_MESSAGES)


def _free_memory(device: torch.device) -> None:
    """Hand cached blocks back to the accelerator (the CPU allocator needs no help)."""
    if device.type in ("cuda", "mps"):
        import gc

        gc.collect()  # tensors caught in reference cycles
        getattr(torch, device.type).empty_cache()


def find_batch_size(
    model: torch.nn.Module,
    sample: torch.Tensor,
    *,
    start: int = 1024,
    min_size: int = 1,
    amp: str = "off",
    device: str | torch.device = "auto",
    verbose: bool = True,
) -> int:
    """The largest batch size, from `start` halving after each out-of-memory error, at which a
    training step (forward and backward) of `model` on copies of one `sample` fits in memory.

    The model's buffers (e.g. BatchNorm statistics) are restored and its gradients cleared.
    Leave room for the optimizer's state (Adam keeps two extra copies of the weights).

    Args:
        model: the network (moved to `device`).
        sample: one example, without a batch dimension; a batch is copies of it.
        start: the first batch size tried.
        min_size: give up (a RuntimeError) below this batch size.
        amp: mixed precision as in `TrainConfig.amp` ("off", "auto", "bf16", "fp16").
        device: where the steps run ("auto", "cuda", a `torch.device`...).
        verbose: print each batch size that did not fit.
    """
    if start < min_size or min_size < 1:
        raise ValueError(f"Need start >= min_size >= 1, got start={start}, min_size={min_size}.")
    dev = pick_device(device)
    model.to(dev)
    dtype = autocast_dtype(amp, dev)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    size = start
    batch: torch.Tensor | None  # dropped after an out-of-memory error, with the outputs
    try:
        while True:
            try:
                batch = sample.to(dev).unsqueeze(0).expand(size, *sample.shape).contiguous()
                with autocast(dev, dtype):
                    out = model(batch)
                getattr(out, "logits", out).float().sum().backward()
                sync(dev)
                return size
            except Exception as error:  # only out-of-memory errors are retried
                if not _is_out_of_memory(error):
                    raise
                reason = (
                    f"{type(error).__name__}: {error}"  # not the error: it pins the activations
                )
            batch = out = None
            model.zero_grad(set_to_none=True)
            _free_memory(dev)
            if size // 2 < min_size:
                raise RuntimeError(
                    f"Even batch size {size} does not fit in {dev} memory ({reason}). Use a "
                    "smaller model or input, amp='bf16', or a device with more memory."
                )
            if verbose:
                print(f"batch size {size} does not fit in {dev} memory; trying {size // 2}")
            size //= 2
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        _free_memory(dev)


def describe_batch_search(max_batch: int, start: int, device_type: str) -> str:
    """What a `find_batch_size` result means: a limit (something ran out of memory), or only the
    search's starting value (nothing did)."""
    if max_batch < start:
        return (
            f"On {device_type}, a training step fits with at most {max_batch:,} examples per batch "
            f"(the search started at {start:,} and halved after each out-of-memory error)."
        )
    text = (
        f"On {device_type}, find_batch_size returned its starting value, {max_batch:,}: nothing ran "
        "out of memory, so this is not a limit. "
    )
    if device_type == "cpu":
        return text + (
            "On a CPU, RAM does not run out at these sizes; on a GPU the search halves from a "
            "start that does not fit until a step does."
        )
    return text + "Start the search higher to find the limit."
