"""Tuning (dlnb.train.tuning): seeded studies, a fixed budget kept across an interruption,
pruning of a fit that falls behind, and the history plot."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from dlnb.data.loaders import make_loaders
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit
from dlnb.train.tuning import PruneOnValLoss, plot_study_history, study_history, tune

pytestmark = pytest.mark.usefixtures("single_thread")


def _bowl(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", 1e-3, 10.0, log=True)
    return (x - 1.0) ** 2 + math.log10(y) ** 2


def _params(study: optuna.Study) -> list[dict]:
    return [t.params for t in study.trials]


def test_a_seeded_study_is_reproducible_and_the_seed_matters():
    first = tune(_bowl, trials=12, seed=3)
    again = tune(_bowl, trials=12, seed=3)
    other = tune(_bowl, trials=12, seed=4)
    assert _params(first) == _params(again) and len(first.trials) == 12
    assert _params(first) != _params(other)
    assert isinstance(first.sampler, optuna.samplers.TPESampler)
    assert optuna.logging.get_verbosity() == optuna.logging.INFO  # quiet only while it runs
    with pytest.raises(ValueError, match="trials >= 1"):
        tune(_bowl, trials=0)


def test_an_interrupted_study_resumes_to_exactly_its_budget_without_repeating_trials(tmp_path):
    db = tmp_path / "runs" / "study.db"
    calls: list[dict] = []

    def interrupted(trial: optuna.Trial) -> float:
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the 4th trial
        calls.append({"x": trial.suggest_float("x", -5.0, 5.0)})
        return _bowl(trial)

    with pytest.raises(KeyboardInterrupt):
        tune(interrupted, trials=8, seed=0, storage=db, enqueue=[{"x": 1.0, "y": 1.0}])
    assert db.exists() and calls[0] == {"x": 1.0}  # the enqueued trial ran first
    killed = optuna.load_study(study_name="study", storage=f"sqlite:///{db}")
    killed.ask()  # a process killed mid-trial leaves a RUNNING trial behind

    resumed: list[dict] = []

    def rest(trial: optuna.Trial) -> float:
        value = _bowl(trial)
        resumed.append(dict(trial.params))
        return value

    study = tune(rest, trials=8, seed=0, storage=db, enqueue=[{"x": 1.0, "y": 1.0}])
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 8  # exactly the budget
    assert states.count(TrialState.FAIL) == 2  # the interrupted and the killed trial
    assert len(resumed) == 5  # only the missing trials ran
    finished_before = [t.params["x"] for t in study.trials[:3]]
    assert finished_before == [c["x"] for c in calls]
    assert not {p["x"] for p in resumed} & set(finished_before)  # no finished trial redrawn
    assert {"x": 1.0, "y": 1.0} not in resumed  # the enqueued defaults did not run twice
    assert len(tune(rest, trials=8, seed=0, storage=db).trials) == 10  # complete: nothing runs


def _linear_task(n: int = 512):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0], [3.0]]) + 0.1 * torch.randn(
        n, 1, generator=g
    )
    return make_loaders(x[:384], y[:384], valid=(x[384:], y[384:]), batch_size=32)


def test_prune_on_val_loss_stops_a_fit_that_falls_behind_and_keeps_a_good_one():
    loaders = _linear_task()

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-7, 1.0, log=True)
        torch.manual_seed(0)
        config = TrainConfig(epochs=6, lr=lr, loss="mse", device="cpu", progress=False)
        history = fit(nn.Linear(5, 1), loaders, config, [PruneOnValLoss(trial)])
        return min(r["valid_loss"] for r in history.records)

    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    lrs = [0.2, 0.2, 1e-6, 0.2]  # fine, fine, a learning rate that does not learn, fine
    study = tune(objective, trials=4, pruner=pruner, enqueue=[{"lr": lr} for lr in lrs])
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED] + [
        TrialState.COMPLETE
    ]
    assert len(study.trials[2].intermediate_values) == 2  # stopped at the first epoch it may be
    # The fine runs learn the map: the variance of y is about 17, that of its noise 0.01.
    assert study.best_value < 0.05

    frame = study_history(study)
    assert list(frame["state"]) == [s.name for s in states] and math.isnan(frame["value"][2])
    assert (frame["best"].diff().dropna() <= 0).all() and frame["best"].iloc[-1] == study.best_value
    assert frame["steps"].tolist() == [6, 6, 2, 6]
    fig, ax = plot_study_history(study)
    assert len(ax.lines) == 3 and "1 pruned" in ax.get_title()  # complete, pruned, best so far


def test_prune_on_val_loss_needs_the_metric_it_reports():
    trial = optuna.create_study().ask()
    config = TrainConfig(epochs=1, loss="mse", device="cpu", progress=False)
    with pytest.raises(KeyError, match="valid_accuracy"):  # a regression records valid_rmse
        fit(nn.Linear(5, 1), _linear_task(), config, [PruneOnValLoss(trial, "valid_accuracy")])


def test_users_call_tuning_from_the_lifecycle_namespace():
    from dlnb import lifecycle
    from dlnb.train import tuning

    for name in ("tune", "PruneOnValLoss", "default_pruner", "study_history", "plot_study_history"):
        assert name in lifecycle.__all__ and getattr(lifecycle, name) is getattr(tuning, name)
