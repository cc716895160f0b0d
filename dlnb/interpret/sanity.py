"""Is the explanation about the model? The model-randomisation sanity check, and method agreement.

Adebayo et al. (2018), "Sanity Checks for Saliency Maps": re-initialise a trained model's weights
(all at once, or layer by layer from the logits down) and compare the attributions before and
after with a rank correlation. A method whose maps barely change explains the input (edges,
bright pixels), not what the network learned.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from dlnb.interpret.attribution import Attribution, attribute, forward_logits, resolve_targets
from dlnb.models import eval_mode
from dlnb.runtime import model_device

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class SanityResult:
    """Spearman correlation between trained and randomised attributions, one per step."""

    method: str
    mode: str
    steps: list[str]
    spearman: list[float]
    bound: float

    @property
    def final(self) -> float:
        """The correlation once every randomised layer is randomised."""
        return self.spearman[-1]

    @property
    def passed(self) -> bool:
        """True when the explanation changed: |Spearman| of the last step below `bound`."""
        return abs(self.final) < self.bound


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays, flattened."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def compare_methods(results: dict[str, Attribution]) -> pd.DataFrame:
    """Mean per-sample Spearman correlation between the heatmaps of every pair of methods."""
    import pandas as pd

    names = list(results)
    maps = {n: results[n].heatmaps() for n in names}
    m = [
        [np.mean([spearman(p, q) for p, q in zip(maps[a], maps[b], strict=True)]) for b in names]
        for a in names
    ]
    return pd.DataFrame(m, index=names, columns=names)


def _randomise(module: nn.Module) -> None:
    if (reset_parameters := getattr(module, "reset_parameters", None)) is not None:
        reset_parameters()
    else:
        for p in module.parameters(recurse=False):
            nn.init.normal_(p, std=0.02)


def sanity_check(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | None = None,
    method: str | Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray] = "saliency",
    *,
    mode: str = "cascading",
    n_groups: int = 4,
    bound: float = 0.5,
    seed: int = 0,
    **kwargs,
) -> SanityResult:
    """Model-randomisation test: attributions must change when the weights are randomised.

    `mode="full"` re-initialises every layer at once; `"cascading"` re-initialises layer groups
    from the logits down, measuring after each. The check passes when the mean per-sample
    Spearman correlation between trained and fully randomised heatmaps is below `bound` in
    absolute value. `method` is a name from METHODS or `f(model, x, targets) -> heatmaps`.
    """
    if mode not in ("full", "cascading"):
        raise ValueError(f"Unknown mode {mode!r}; use 'full' or 'cascading'.")
    x = x.to(model_device(model))
    with eval_mode(model):
        targets = resolve_targets(target, forward_logits(model, x))

    def maps(m: nn.Module) -> np.ndarray:
        if callable(method):
            return np.abs(np.asarray(method(m, x, targets)))
        return attribute(m, x, targets, method, **kwargs).heatmaps()

    reference = maps(model)
    random_model = copy.deepcopy(model)
    layers = [
        (n, m)
        for n, m in random_model.named_modules()
        if any(True for _ in m.parameters(recurse=False))
    ]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no parameters to randomise.")
    order = layers[::-1]  # from the logits down, in registration order
    edges = np.linspace(0, len(order), min(n_groups, len(order)) + 1).round().astype(int)
    groups = (
        [layers]
        if mode == "full"
        else [order[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    steps, rhos = [], []
    cuda = [x.device.index or 0] if x.is_cuda else []
    for i, group in enumerate(groups):
        with torch.random.fork_rng(devices=cuda):  # seeded, and the caller's RNG state is kept
            torch.manual_seed(seed + i)
            for _, module in group:
                _randomise(module)
        current = maps(random_model)
        rhos.append(
            float(np.mean([spearman(a, b) for a, b in zip(reference, current, strict=True)]))
        )
        first, last = group[0][0], group[-1][0]
        steps.append(
            "all layers" if mode == "full" else first if first == last else f"{first}..{last}"
        )
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return SanityResult(name, mode, steps, rhos, bound)
