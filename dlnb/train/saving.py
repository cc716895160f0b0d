"""A trained model on disk: its weights as safetensors, and what it needs besides (preprocessing,
label names, how to rebuild it) as a small JSON file that also pins the weights' sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlnb.data.registry import sha256_file
from dlnb.train.checkpoint import unwrap_model

__all__ = ["WEIGHTS", "META", "save_model", "load_model_files", "load_weights_into"]

WEIGHTS, META = "model.safetensors", "dlnb.json"


def save_model(directory: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights (`model.safetensors`) and `meta` plus their hash (`dlnb.json`)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap_model(model).state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    record = {
        **meta,
        "weights": WEIGHTS,
        "sha256": sha256_file(directory / WEIGHTS),
        "shapes": {k: list(v.shape) for k, v in state.items()},
    }
    (directory / META).write_text(json.dumps(record, indent=1))
    return directory


def load_model_files(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and the metadata `save_model` wrote, after checking the weights' sha256."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / META).is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{directory} holds no saved dlnb model (expected {WEIGHTS} and {META}); save one with "
            "the `.save(directory)` of a trained model."
        )
    meta = json.loads((directory / META).read_text())
    actual = sha256_file(directory / WEIGHTS)
    if actual != meta.get("sha256"):
        raise ValueError(
            f"{directory / WEIGHTS} does not match the sha256 recorded in {META} "
            f"({actual[:12]}... instead of {str(meta.get('sha256'))[:12]}...): the weights were "
            "altered or come from another save. Save the model again."
        )
    return load_file(str(directory / WEIGHTS)), meta


def load_weights_into(
    model: nn.Module, state: dict[str, torch.Tensor], where: str = ""
) -> nn.Module:
    """Load `state` into `model`, naming every missing, unexpected or differently shaped tensor."""
    own = model.state_dict()
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(own.keys() & state.keys())
        if own[k].shape != state[k].shape
    ]
    if missing or extra or shapes:
        raise ValueError(
            f"The saved weights{' in ' + where if where else ''} do not fit this model: missing "
            f"{missing or 'none'}, unexpected {extra or 'none'}, other shapes "
            f"{shapes or 'none'}. Build the model with the settings it was saved with."
        )
    model.load_state_dict(state)
    return model
