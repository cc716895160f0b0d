"""Out-of-memory detection and the largest batch size that fits."""

from __future__ import annotations

import torch

from dlnb.runtime import pick_device, sync
from dlnb.train.precision import autocast, autocast_dtype

OOM_MESSAGES = ("out of memory", "can't allocate memory", "CUDNN_STATUS_NOT_SUPPORTED")


def is_out_of_memory(error: BaseException) -> bool:
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
                if not is_out_of_memory(error):
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
