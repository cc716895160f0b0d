"""Mixed precision: the autocast dtype for a device, and the autocast context."""

from __future__ import annotations

import torch


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `TrainConfig.amp` on `device`, or None for plain float32.

    "auto" is bf16 on GPUs that support it, fp16 (with a gradient scaler) on older GPUs, and off
    on CPUs; "bf16" also runs on a CPU (autocast on the CPU), "fp16" needs CUDA.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(
            f"amp='fp16' needs a CUDA GPU, but this run is on {device}. Use amp='bf16' "
            "(autocast works on the CPU too) or amp='off'."
        )
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            "This GPU does not support bfloat16 (it predates Ampere). Use amp='fp16', which adds "
            "a gradient scaler, or amp='auto'."
        )
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp={amp!r} is not one of 'auto', 'off', 'bf16', 'fp16'.")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """`torch.autocast` for `device` in `dtype`, or a disabled one when dtype is None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
