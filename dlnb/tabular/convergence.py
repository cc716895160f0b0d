"""Did a network train to the end? `EpochCount` counts the epochs one `fit_table` run trained, so
that `dlnb.claims.capped` can flag runs that stopped at their epoch cap before any claim rests on
them:

    counts = {seed: EpochCount() for seed in seeds}
    model = fit_table(table, config=TrainConfig(epochs=200), callbacks=[counts[seed]], ...)
    cap = claims.capped("the MLP", [c.epochs for c in counts.values()], 200)
"""

from __future__ import annotations

from dlnb.train.callbacks import Callback

__all__ = ["EpochCount"]


class EpochCount(Callback):
    """The number of epochs a run trained (`epochs`, resumed ones included); early stopping ends a
    run before its cap."""

    def __init__(self) -> None:
        self.epochs = 0

    def on_fit_start(self, state) -> None:
        """Start counting (a callback reused for a second run counts that run only)."""
        self.epochs = 0

    def on_epoch_end(self, state) -> None:
        """Note the epoch just trained (the loop counts from 1)."""
        self.epochs = int(state.epoch)
