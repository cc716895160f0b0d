"""Callbacks for `dlnb.train.loop.fit`: a few event methods, each optional."""

from __future__ import annotations

import copy
import math
import sys

from dlnb.runtime import in_notebook, is_headless


class Callback:
    """Override any of the event methods; `state` is the running `TrainState`."""

    def on_fit_start(self, state) -> None:
        """Called once before the first epoch (after a resume, if any)."""

    def on_epoch_start(self, state) -> None:
        """Called at the start of each epoch."""

    def on_batch_end(self, state) -> None:
        """Called after each training batch."""

    def on_epoch_end(self, state) -> None:
        """Called after each epoch, once its metrics are in `state.epoch_metrics`."""

    def on_fit_end(self, state) -> None:
        """Called once when training ends."""

    def state_dict(self) -> dict:
        """What this callback must remember across a resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs; optionally restore the best weights."""

    def __init__(
        self,
        monitor: str = "valid_loss",
        patience: int = 3,
        mode: str = "min",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}.")
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch, self.wait, self.best_weights = 0, 0, None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, state) -> None:
        """Note an improvement of `monitor` (keeping the weights), or stop after `patience`."""
        if self.monitor not in state.epoch_metrics:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, which this run does not record "
                f"(it records {sorted(state.epoch_metrics)}). Pass loaders with a .valid split or "
                "monitor a train metric."
            )
        value = state.epoch_metrics[self.monitor]
        if not math.isfinite(value):
            raise ValueError(
                f"EarlyStopping: {self.monitor} is {value} at epoch {state.epoch}, which cannot be "
                f"compared with the best so far ({self.best:.4g} at epoch {self.best_epoch}). Find "
                "where the NaN/Inf comes from (inputs, learning rate) before training on."
            )
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                model = getattr(state.model, "_orig_mod", state.model)
                self.best_weights = copy.deepcopy(model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop = True
                state.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for "
                    f"{self.patience} epochs (best {self.best:.4g} at epoch {self.best_epoch})"
                )

    def on_fit_end(self, state) -> None:
        """Load the best epoch's weights back into the model (with `restore_best`)."""
        if self.restore_best and self.best_weights is not None:
            model = getattr(state.model, "_orig_mod", state.model)
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        """The best value, its epoch, the epochs waited and the best weights."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned, to resume counting where a run stopped."""
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_weights = state["wait"], state["best_weights"]


def _format(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if key == "epoch":
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


class ProgressBar(Callback):
    """One tqdm bar per fit, reset each epoch, in a live notebook or terminal; a line per epoch.

    The bar is never closed with `leave=False`: in a notebook that destroys the widget's model but
    keeps its output, so a reloaded page shows "Error displaying widget: model not found". The one
    bar is kept (`leave=True`) and finished at the end of the fit.
    """

    def __init__(self):
        self.bar = None

    def on_epoch_start(self, state) -> None:
        """Open the bar (first epoch) or reset it for this epoch's batches."""
        if (is_headless() and in_notebook()) or not (in_notebook() or sys.stderr.isatty()):
            return
        desc = f"epoch {state.epoch}/{state.config.epochs}"
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.batches_per_epoch, desc=desc, leave=True)
        else:
            self.bar.reset(total=state.batches_per_epoch)
            self.bar.set_description(desc, refresh=False)

    def on_batch_end(self, state) -> None:
        """Advance the bar; show the batch loss every 20 batches."""
        if self.bar is not None:
            self.bar.update(1)
            if state.batch % 20 == 0:
                self.bar.set_postfix(loss=f"{state.last_loss:.4f}", refresh=False)

    def on_epoch_end(self, state) -> None:
        """Print one line with the epoch's metrics."""
        if self.bar is not None:
            self.bar.refresh()
        print(
            f"epoch {state.epoch}/{state.config.epochs}  {_format(state.epoch_metrics)}", flush=True
        )

    def on_fit_end(self, state) -> None:
        """Finish the bar and print why training stopped early, if it did."""
        if self.bar is not None:
            self.bar.close()  # leave=True: the finished bar (and its widget model) stays
            self.bar = None
        if state.stop_reason:
            print(state.stop_reason, flush=True)


class LivePlot(Callback):
    """Learning curves that redraw after each epoch in a live notebook; one final figure when headless."""

    def __init__(self):
        self.handle = None

    def _figure(self, state):
        import matplotlib.pyplot as plt

        fig, _ = state.history.plot(epochs=state.config.epochs)
        plt.close(fig)
        return fig

    def on_epoch_end(self, state) -> None:
        """Redraw the learning curves in a live notebook."""
        if is_headless() or not in_notebook():
            return
        from IPython.display import display

        fig = self._figure(state)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)

    def on_fit_end(self, state) -> None:
        """Show the final learning curves once when the notebook runs headless."""
        if in_notebook() and is_headless() and len(state.history):
            from IPython.display import display

            display(self._figure(state))
