"""Is the explanation about the model? The model-randomisation sanity check, and method agreement.

Adebayo et al. (2018), "Sanity Checks for Saliency Maps": re-initialise a trained model's weights
(all at once, or layer by layer from the logits down) and compare the attributions before and
after with a rank correlation. A method whose maps barely change explains the input (edges,
bright pixels), not what the network learned. `sanity_check` does it for image models,
`text_sanity_check` for the token attributions of a text model; each result carries the
per-sample correlations, so its verdict comes from an interval, not from a mean alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from dlnb.claims import t_interval
from dlnb.interpret.attribution import (
    Attribution,
    TokenAttribution,
    attribute,
    attribute_text,
    forward_logits,
    resolve_targets,
)
from dlnb.models import eval_mode
from dlnb.recording import record
from dlnb.runtime import model_device

if TYPE_CHECKING:
    import pandas as pd

SanityVerdict = Literal["passed", "failed", "borderline"]
Maps = Callable[[nn.Module], list[np.ndarray]]


@dataclass
class SanityResult:
    """Spearman correlation between trained and randomised attributions, one per step.

    `spearman` holds the mean over samples after each randomisation step; `per_sample` the
    correlation of every sample once the last step is done (what the verdict rests on).
    """

    method: str
    mode: str
    steps: list[str]
    spearman: list[float]
    bound: float
    per_sample: list[float] = field(default_factory=list)

    @property
    def final(self) -> float:
        """The mean correlation once every randomised layer is randomised."""
        return self.spearman[-1]

    def interval(self) -> tuple[float, float, float]:
        """The final mean correlation and its t-based 95 % interval over samples (infinite
        bounds with fewer than two samples)."""
        values = self.per_sample or [self.final]
        return t_interval(values)

    @property
    def verdict(self) -> SanityVerdict:
        """passed: the interval lies inside (-bound, bound); failed: it lies at or beyond the
        bound; borderline: it straddles it. With one sample, its value alone decides."""
        mean, low, high = self.interval()
        if not (math.isfinite(low) and math.isfinite(high)):
            low = high = mean
        if -self.bound < low and high < self.bound:
            return "passed"
        if low >= self.bound or high <= -self.bound:
            return "failed"
        return "borderline"

    @property
    def passed(self) -> bool:
        """True when the explanation changed: the whole interval is below `bound` in size."""
        return self.verdict == "passed"

    def record(self, name: str) -> None:
        """Record the signed final correlation as `name`, its interval as `name_low` /
        `name_high` (left out with one sample: there is no interval) and `name_verdict`."""
        mean, low, high = self.interval()
        record(name, self.final)
        if math.isfinite(low) and math.isfinite(high):
            record(f"{name}_low", low)
            record(f"{name}_high", high)
        record(f"{name}_verdict", self.verdict)

    def label(self) -> str:
        """'passed (0.11)', 'FAILED (-0.62)', 'borderline (0.48)': the signed final correlation,
        for titles and menus."""
        word = {"passed": "passed", "failed": "FAILED", "borderline": "borderline"}[self.verdict]
        return f"{word} ({self.final:.2f})"


def sanity_table(results: dict[str, SanityResult]) -> pd.DataFrame:
    """One row per method: how it was randomised, the final Spearman, its 95 % interval over
    samples (empty with one sample), the number of samples and the verdict."""
    import pandas as pd

    rows = {}
    for method, r in results.items():
        mean, low, high = r.interval()
        finite = math.isfinite(low) and math.isfinite(high)
        rows[method] = {
            "randomised": "layer by layer" if r.mode == "cascading" else "all at once",
            "final Spearman": r.final,
            "95% low": low if finite else np.nan,
            "95% high": high if finite else np.nan,
            "samples": len(r.per_sample) or 1,
            "verdict": r.verdict,
        }
    return pd.DataFrame(rows).T


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


def _layer_groups(model: nn.Module, mode: str, n_groups: int) -> list[list[tuple[str, nn.Module]]]:
    """The layers to randomise at each step: all at once, or groups from the logits down."""
    if mode not in ("full", "cascading"):
        raise ValueError(f"Unknown mode {mode!r}; use 'full' or 'cascading'.")
    layers = [
        (n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))
    ]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no parameters to randomise.")
    if mode == "full":
        return [layers]
    order = layers[::-1]  # from the logits down, in registration order
    edges = np.linspace(0, len(order), min(n_groups, len(order)) + 1).round().astype(int)
    return [order[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _cascade(
    model: nn.Module,
    maps: Maps,
    reference: list[np.ndarray],
    *,
    name: str,
    mode: str,
    n_groups: int,
    bound: float,
    seed: int,
) -> SanityResult:
    """Randomise a copy of `model` step by step; correlate `maps` of it with `reference`."""
    random_model = copy.deepcopy(model)
    groups = _layer_groups(random_model, mode, n_groups)
    device = model_device(model)
    cuda = [device.index or 0] if device.type == "cuda" else []
    steps, rhos, per_sample = [], [], []
    for i, group in enumerate(groups):
        with torch.random.fork_rng(devices=cuda):  # seeded, and the caller's RNG state is kept
            torch.manual_seed(seed + i)
            for _, module in group:
                _randomise(module)
        per_sample = [spearman(a, b) for a, b in zip(reference, maps(random_model), strict=True)]
        rhos.append(float(np.mean(per_sample)))
        first, last = group[0][0], group[-1][0]
        steps.append(
            "all layers" if mode == "full" else first if first == last else f"{first}..{last}"
        )
    return SanityResult(name, mode, steps, rhos, bound, per_sample)


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
    reference: Attribution | np.ndarray | None = None,
    **kwargs,
) -> SanityResult:
    """Model-randomisation test: attributions must change when the weights are randomised.

    `mode="full"` re-initialises every layer at once; `"cascading"` re-initialises layer groups
    from the logits down, measuring after each. The check passes when the per-sample Spearman
    correlations between trained and fully randomised heatmaps lie inside +-`bound` (their 95 %
    interval; see `SanityResult.verdict`). `method` is a name from METHODS or
    `f(model, x, targets) -> heatmaps`. `reference`: the trained model's attributions of `x`,
    already computed with the same settings (they are not computed again).
    """
    if mode not in ("full", "cascading"):
        raise ValueError(f"Unknown mode {mode!r}; use 'full' or 'cascading'.")
    x = x.to(model_device(model))
    with eval_mode(model):
        targets = resolve_targets(target, forward_logits(model, x))

    def maps(m: nn.Module) -> list[np.ndarray]:
        if callable(method):
            return list(np.abs(np.asarray(method(m, x, targets))))
        return list(attribute(m, x, targets, method, **kwargs).heatmaps())

    if isinstance(reference, Attribution):
        trained = list(reference.heatmaps())
    elif reference is not None:
        trained = list(np.abs(np.asarray(reference)))
    else:
        trained = maps(model)
    if len(trained) != len(x):
        raise ValueError(f"`reference` holds {len(trained)} maps for {len(x)} inputs.")
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return _cascade(
        model, maps, trained, name=name, mode=mode, n_groups=n_groups, bound=bound, seed=seed
    )


def text_sanity_check(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    mode: str = "cascading",
    n_groups: int = 4,
    bound: float = 0.5,
    seed: int = 0,
    n_steps: int = 32,
    reference: Sequence[TokenAttribution] | None = None,
) -> SanityResult:
    """The randomisation check for `attribute_text` (layer integrated gradients over the token
    embeddings): per text, the Spearman correlation of |attribution| per word between the trained
    model and the randomised one, explaining the class the trained model predicts.

    `reference`: the trained model's `attribute_text` results for `texts`, already computed with
    the same `n_steps` (they are not computed again).
    """
    if not texts:
        raise ValueError("Pass at least one text to check.")
    if reference is not None and len(reference) != len(texts):
        raise ValueError(f"`reference` holds {len(reference)} results for {len(texts)} texts.")
    trained = (
        list(reference)
        if reference is not None
        else [attribute_text(model, tokenizer, t, n_steps=n_steps, warn=False) for t in texts]
    )
    targets = [r.target for r in trained]

    def maps(m: nn.Module) -> list[np.ndarray]:  # a random model's reference notes are expected
        return [
            np.abs(attribute_text(m, tokenizer, t, c, n_steps=n_steps, warn=False).word_values)
            for t, c in zip(texts, targets, strict=True)
        ]

    trained_maps = [np.abs(r.word_values) for r in trained]
    name = "layer_integrated_gradients"
    return _cascade(
        model, maps, trained_maps, name=name, mode=mode, n_groups=n_groups, bound=bound, seed=seed
    )
