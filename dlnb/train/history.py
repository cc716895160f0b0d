"""The record of a training run: one dict per epoch, and a plot of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class History:
    """Per-epoch metrics of a `fit` run (train_loss, valid_loss, valid_accuracy, lr, seconds...)."""

    records: list[dict] = field(default_factory=list)
    stop_reason: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        return [r.get(key, math.nan) for r in self.records]

    def last(self, key: str):
        """The value of `key` in the last epoch."""
        if not self.records:
            raise ValueError("The history is empty: no epoch has finished yet.")
        return self.records[-1][key]

    def best(self, key: str, mode: str = "max"):
        """The best value of `key` over epochs (`mode` is "max" or "min")."""
        values = [v for v in self[key] if not math.isnan(v)]
        if not values:
            raise ValueError(f"No epoch recorded {key!r}; recorded keys: {sorted(self.keys())}.")
        return max(values) if mode == "max" else min(values)

    def keys(self) -> set[str]:
        """Every metric name recorded in any epoch."""
        return {k for r in self.records for k in r}

    def to_frame(self):
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch") if self.records else pd.DataFrame()

    def _second_metric(self) -> str | None:
        """The metric plotted beside the loss: "accuracy" or "rmse", if the run recorded one."""
        keys = self.keys()
        return next(
            (m for m in ("accuracy", "rmse") if f"valid_{m}" in keys or f"train_{m}" in keys),
            None,
        )

    def plot(self, ax=None, title: str | None = None, epochs: int | None = None):
        """Loss curves (and the accuracy or RMSE curve beside them); returns (fig, ax).

        The epoch axis has integer ticks and, with `epochs`, spans the whole run from the start
        (a live plot after one epoch is one point on the full axis, not on a 0.96-1.04 one).
        """
        from matplotlib.ticker import MaxNLocator

        metric = self._second_metric()
        fig, axes = _loss_and_metric_axes(ax, metric)
        done = self["epoch"]
        for split in ("train", "valid"):
            if f"{split}_loss" in self.keys():
                axes[0].plot(done, self[f"{split}_loss"], marker="o", label=split)
        axes[0].set(xlabel="epoch", ylabel="loss", title=title or "loss")
        axes[0].legend()
        if metric and len(axes) > 1:
            for split in ("train", "valid"):
                if f"{split}_{metric}" in self.keys():
                    axes[1].plot(done, self[f"{split}_{metric}"], marker="o", label=split)
            axes[1].set(xlabel="epoch", ylabel=metric, title=metric)
            axes[1].legend()
        last = max(epochs or 0, max(done, default=1), 2)
        for a in axes:
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
            a.set_xlim(0.75, last + 0.25)
        fig.tight_layout()
        return fig, (axes if len(axes) > 1 else axes[0])


def _loss_and_metric_axes(ax, metric: str | None):
    """`(fig, axes)`: a new figure with a loss panel (and a `metric` panel), or `ax` alone."""
    if ax is not None:
        return ax.figure, [ax]
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(
        1, 2 if metric else 1, figsize=(10 if metric else 5, 3.5), squeeze=False
    )
    return fig, grid[0]
