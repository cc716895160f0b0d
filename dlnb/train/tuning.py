"""Hyperparameter tuning with Optuna: a seeded TPE study with a fixed trial budget, median pruning
on validation loss, resumable from a SQLite file, and a plot of its history.

Tune any `dlnb.fit`, e.g. its learning rate and weight decay, pruning runs that fall behind:

    from dataclasses import replace

    def objective(trial):
        config = replace(base, lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                         weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True))
        history = fit(make_model(), loaders, config, [PruneOnValLoss(trial)])
        return min(r["valid_loss"] for r in history.records)

    study = tune(objective, trials=20, seed=0, storage="runs/tune/study.db")  # resumable
    study.best_params; plot_study_history(study)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from dlnb.plots import axes
from dlnb.train.callbacks import Callback

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials that count against the budget


def default_pruner() -> optuna.pruners.BasePruner:
    """The median rule (Golovin et al., 2017, Google Vizier): prune a trial whose value at an epoch
    is worse than the median of earlier trials at that epoch, once 5 trials finished and from the
    3rd epoch on (the first epochs favour large learning rates that do not end best)."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def _storage_url(storage: str | Path) -> str:
    """A SQLite URL for a file path; a string that already is a URL is kept."""
    text = str(storage)
    if "://" in text:
        return text
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(text).resolve()}"


def _fail_stale(study: optuna.Study) -> None:
    """Mark RUNNING trials FAIL: left by a crashed process, they are run again (one worker per study)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)


def tune(
    objective: Callable[[optuna.Trial], float],
    *,
    trials: int,
    seed: int = 0,
    direction: Literal["minimize", "maximize"] = "minimize",
    storage: str | Path | None = None,
    study_name: str | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    timeout: float | None = None,
    progress: bool = False,
    enqueue: Sequence[dict[str, Any]] = (),
) -> optuna.Study:
    """Run `objective` until the study has `trials` finished (complete or pruned) trials.

    The sampler is TPE (with fewer than its 10 startup trials it samples at random, seeded). With
    `storage` the study is resumable: run again after an interruption, it loads the study, marks
    trials a crash left RUNNING as failed, and runs only the trials still missing; a resumed
    sampler is seeded from `(seed, finished trials)` so it does not redraw the first trials'
    parameters. Optuna's INFO log is quiet while it runs.

    Args:
        objective: trains with a trial's parameters and returns the value to optimise.
        trials: how many finished (complete or pruned) trials the study ends with.
        seed: seeds the TPE sampler.
        direction: "minimize" (a loss) or "maximize" (an accuracy).
        storage: a SQLite file path, or a database URL: makes the study resumable.
        study_name: the study's name in `storage` (default: the file's stem).
        pruner: default `default_pruner()`; `optuna.pruners.NopPruner()` turns pruning off.
        timeout: stop starting trials after this many seconds.
        progress: show Optuna's progress bar.
        enqueue: parameters to try first (e.g. the defaults), skipped when already finished.
    """
    if trials < 1:
        raise ValueError(f"tune needs trials >= 1, got {trials}.")
    url = _storage_url(storage) if storage is not None else None
    if url is not None and study_name is None:
        study_name = Path(str(storage)).stem
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=url, study_name=study_name, direction=direction, load_if_exists=True
        )
        _fail_stale(study)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        sampler_seed = (
            seed if done == 0 else int(np.random.SeedSequence([seed, done]).generate_state(1)[0])
        )
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed)
        study.pruner = pruner if pruner is not None else default_pruner()
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            for params in list(enqueue)[done:]:
                study.enqueue_trial(dict(params))
        if trials > done:
            study.optimize(
                objective, n_trials=trials - done, timeout=timeout, show_progress_bar=progress
            )
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


class PruneOnValLoss(Callback):
    """Report `metric` to `trial` after every epoch of a `fit`; raise `optuna.TrialPruned` when
    the study's pruner says this run falls behind the earlier ones."""

    def __init__(self, trial: optuna.Trial, metric: str = "valid_loss"):
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, state) -> None:
        """Report the epoch's `metric` to the trial; prune it when the pruner says so."""
        if self.metric not in state.epoch_metrics:
            raise KeyError(
                f"PruneOnValLoss reports {self.metric!r}, which this run does not record (it "
                f"records {sorted(state.epoch_metrics)}). Pass loaders with a .valid split."
            )
        value = float(state.epoch_metrics[self.metric])
        self.trial.report(value, state.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric} {value:.4g} at epoch {state.epoch}")


def study_history(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: `number`, `state`, `value`, `best` so far (finished trials only),
    `steps` (intermediate values reported, e.g. epochs) and one column per parameter."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    rows, best = [], math.inf
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.state == TrialState.COMPLETE else math.nan
        if t.state == TrialState.COMPLETE and value is not None:
            best = min(best, sign * value)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": value,
                "best": sign * best if math.isfinite(best) else math.nan,
                "steps": len(t.intermediate_values),
                "last_intermediate": (
                    t.intermediate_values[max(t.intermediate_values)]
                    if t.intermediate_values
                    else math.nan
                ),
                **t.params,
            }
        )
    return pd.DataFrame(rows)


def plot_study_history(
    history: optuna.Study | pd.DataFrame,
    ax: Axes | None = None,
    title: str | None = None,
) -> tuple[Figure, Axes]:
    """Every trial's value (pruned ones at their last reported value, as crosses) and the best so
    far, against the trial number; takes a study or its `study_history` frame; returns (fig, ax)."""
    frame = study_history(history) if isinstance(history, optuna.Study) else history
    fig, ax = axes(ax, (6, 3.5))
    done = frame[frame["state"] == "COMPLETE"]
    pruned = frame[frame["state"] == "PRUNED"]
    ax.plot(done["number"], done["value"], "o", color="C0", label="complete")
    if len(pruned):
        ax.plot(
            pruned["number"],
            pruned["last_intermediate"],
            "x",
            color="C3",
            label="pruned (last reported)",
        )
    ax.step(frame["number"], frame["best"], where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(title or f"{len(frame)} trials: {len(done)} complete, {len(pruned)} pruned")
    ax.legend(fontsize=8)
    return fig, ax
