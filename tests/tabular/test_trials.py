"""One model's tuning (dlnb.tabular.trials): a study of exactly `Budget.trials` trials, pruned
trials counted against it and never chosen, and the untuned majority class."""

from __future__ import annotations

import optuna
import pytest
import torch

from dlnb.tabular import trials as tabular_trials
from dlnb.tabular.comparison import Budget, _prepare
from dlnb.tabular.preprocess import make_split
from dlnb.tabular.tables import synthetic_table
from dlnb.tabular.trials import tune_model
from dlnb.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")
CPU = torch.device("cpu")


def _prepared(n: int = 300):
    table = synthetic_table(n)
    split = make_split(table, 0)
    pre, data = _prepare(table, split, split.train, "quantile")
    return table, pre, data


class _PruneTheSecondTrial(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.number == 1


def test_a_pruned_neural_trial_counts_against_the_budget_and_is_never_chosen(monkeypatch, capsys):
    table, pre, data = _prepared()
    calls = []
    real = tabular_trials._run_neural
    monkeypatch.setattr(
        tabular_trials, "_run_neural", lambda *a, **k: calls.append(a[-1]) or real(*a, **k)
    )
    monkeypatch.setattr("dlnb.train.tuning.default_pruner", _PruneTheSecondTrial)
    budget = Budget(trials=3, train=TrainConfig(epochs=3, progress=False))
    args = ("mlp", table.task, data, pre, 2, budget, {}, CPU, 0, 1)
    best = tune_model(*args, progress=True)
    assert len(calls) == 3 and all(isinstance(c, optuna.Trial) for c in calls)
    study = best["study"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert len(study.trials[1].intermediate_values) == 1  # stopped after its first epoch
    assert best["valid"] == pytest.approx(min(study.trials[0].value, study.trials[2].value))
    assert "mlp trial 2/3: pruned" in capsys.readouterr().out

    every_epoch_behind = optuna.pruners.ThresholdPruner(upper=0.0)
    monkeypatch.setattr("dlnb.train.tuning.default_pruner", lambda: every_epoch_behind)
    with pytest.raises(RuntimeError, match="Every mlp trial was pruned"):
        tune_model(*args)
    no_pruning = Budget(trials=2, train=TrainConfig(epochs=3, progress=False), prune=False)
    unpruned = tune_model("mlp", table.task, data, pre, 2, no_pruning, {}, CPU, 0, 1)
    assert [t.state.name for t in unpruned["study"].trials] == ["COMPLETE", "COMPLETE"]


def test_the_majority_class_is_one_untuned_run_and_fixed_params_are_not_searched():
    table, pre, data = _prepared()
    budget = Budget(trials=2, max_rounds=20)
    majority = tune_model("majority", table.task, data, pre, 2, budget, {}, CPU, 0, 1)
    assert majority["study"] is None and majority["hyper"] == {} and majority["valid"] > 0.5
    fixed = {"max_depth": 2}
    xgb = tune_model("xgboost", table.task, data, pre, 2, budget, fixed, CPU, 0, 1)
    assert len(xgb["study"].trials) == 2 and xgb["hyper"]["max_depth"] == 2
    assert all("max_depth" not in t.params for t in xgb["study"].trials)
    assert xgb["valid"] < majority["valid"]  # log loss: the trees learn
