"""The comparison harness (dlnb.tabular.comparison): leak-free preprocessing, every model learns."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from dlnb.tabular import comparison as tabular_compare
from dlnb.tabular.comparison import Budget, compare
from dlnb.tabular.models import DEFAULTS
from dlnb.tabular.preprocess import fit_preprocessor, make_split
from dlnb.tabular.tables import synthetic_table
from dlnb.train import loop
from dlnb.train.config import TrainConfig

# Tiny models: one thread is faster and does not oversubscribe a shared machine.
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.slow
def test_compare_fits_preprocessing_on_the_training_rows_only(monkeypatch):
    table = synthetic_table(600, cardinality=8)
    seen = []

    def spy(X, *args, **kwargs):
        seen.append(X.index.to_numpy().copy())
        return fit_preprocessor(X, *args, **kwargs)

    monkeypatch.setattr(tabular_compare, "fit_preprocessor", spy)
    torch.set_num_threads(2)
    compare(
        table,
        models=("xgboost",),
        seeds=(0, 1),
        train_sizes=(200, None),
        budget=Budget(trials=1, max_rounds=20),
        threads=1,
        progress=False,
    )
    assert torch.get_num_threads() == 2  # the cap is lifted afterwards
    assert len(seen) == 4
    for i, rows in enumerate(seen):
        split = make_split(table, seed=i // 2)
        assert set(rows) <= set(split.train)
        assert not set(rows) & (set(split.valid) | set(split.test))
    assert len(seen[0]) == 200 and len(seen[1]) == len(make_split(table, 0).train)


@pytest.mark.slow
def test_every_model_learns_and_results_report_costs():
    table = synthetic_table(1500, cardinality=10, label_noise=0.0, minority_noise=0.0)
    tiny = Budget(
        trials=2,
        train=TrainConfig(epochs=15, progress=False),
        patience=3,
        max_rounds=200,
        early_stopping_rounds=20,
    )
    results = compare(
        table,
        seeds=(0, 1),
        budget=tiny,
        threads=1,
        progress=False,
        overrides={"ft_transformer": {"d_token": 16, "n_blocks": 1}},
    )
    f = results.frame
    assert len(f) == 2 * 5 and set(f["model"]) == {"majority", *tabular_compare.MODELS}
    majority = f[f["model"] == "majority"]["accuracy"].mean()
    for model in tabular_compare.MODELS:
        rows = f[f["model"] == model]
        assert rows["accuracy"].mean() > majority + 0.1, model
        assert (rows["roc_auc"] > 0.7).all() and (rows["train_seconds"] > 0).all()
        assert (rows["infer_ms_per_1k"] > 0).all() and (
            rows["tune_seconds"] >= rows["train_seconds"]
        ).all()
    nets = f[f["model"].isin(["mlp", "emb_mlp", "ft_transformer"])]
    assert (nets["params"] > 0).all() and nets["trees"].isna().all()
    xgb = f[f["model"] == "xgboost"]
    assert (xgb["trees"] >= 1).all() and (xgb["leaves"] >= xgb["trees"]).all()

    s = results.summary()
    assert (s["seeds"] == 2).all()
    acc = f[f["model"] == "xgboost"]["accuracy"]
    row = s[s["model"] == "xgboost"].iloc[0]
    assert row["accuracy_mean"] == pytest.approx(acc.mean())
    assert row["accuracy_std"] == pytest.approx(acc.std(ddof=1))  # sample std over the seeds
    assert "±" in results.table().iloc[0]["accuracy"]
    assert (
        results.plot().axes
        and f"{results.largest().iloc[0]['accuracy_mean']:.4f}" in results.describe()
    )

    audit = results.audit("xgboost")
    assert set(audit.before.index) == {"majority", "minority", "all"}
    assert audit.plot().axes


@pytest.mark.slow
def test_regression_is_scored_by_rmse_and_beats_the_mean():
    table = synthetic_table(1200, task="regression", cardinality=10)
    results = compare(
        table,
        models=("xgboost", "mlp"),
        seeds=(0,),
        threads=1,
        progress=False,
        budget=Budget(
            trials=1, train=TrainConfig(epochs=20, progress=False), patience=3, max_rounds=200
        ),
    )
    f = results.frame.set_index("model")
    assert results.metric == "rmse" and "accuracy" not in f
    assert f.loc["xgboost", "rmse"] < 0.8 * f.loc["majority", "rmse"]
    assert f.loc["mlp", "rmse"] < 0.8 * f.loc["majority", "rmse"]
    with pytest.raises(ValueError, match="binary classification"):
        results.audit("xgboost")


def test_the_budget_train_config_reaches_every_trial_on_one_resolved_device(monkeypatch):
    resolved, runs = [], []
    real_pick, real_fit = loop.pick_device, loop.fit
    monkeypatch.setattr(loop, "pick_device", lambda d: resolved.append(d) or real_pick(d))

    def spy(model, loaders, config, callbacks=(), *, device=None):
        runs.append((config, device, callbacks[0].patience))
        return real_fit(model, loaders, config, callbacks, device=device)

    monkeypatch.setattr(loop, "fit", spy)
    train = TrainConfig(epochs=2, grad_clip=1.0, device="cpu", seed=99, progress=False)
    results = compare(
        synthetic_table(300, task="regression"),
        models=("mlp",),
        seeds=(3,),
        budget=Budget(trials=2, train=train, patience=4),
        progress=False,
    )
    assert resolved == ["cpu"]  # once for the whole comparison
    assert len(runs) == 2 and all(device == torch.device("cpu") for _, device, _ in runs)
    for config, _, patience in runs:
        assert (config.epochs, config.grad_clip, config.progress, patience) == (2, 1.0, False, 4)
        assert (config.loss, config.seed) == ("mse", 3)  # from the task and the run
    assert runs[0][0].lr != runs[1][0].lr  # tuned per trial
    assert set(results.frame["epochs"]) <= {0, 1, 2}
    assert train.lr == TrainConfig().lr and train.seed == 99  # the budget's config is not changed


def test_compare_rejects_unknown_models_and_empty_budgets():
    table = synthetic_table(300)
    with pytest.raises(ValueError, match="Unknown models"):
        compare(table, models=("catboost",))
    with pytest.raises(ValueError, match="trials"):
        compare(table, budget=Budget(trials=0))


def test_every_trial_reports_progress_the_default_is_one_thread_and_a_report_per_run(
    monkeypatch, capsys
):
    threads = []
    real_fit = loop.fit
    monkeypatch.setattr(
        loop, "fit", lambda *a, **k: threads.append(torch.get_num_threads()) or real_fit(*a, **k)
    )
    train = TrainConfig(epochs=2, device="cpu", progress=False)
    results = compare(
        synthetic_table(300), models=("mlp",), seeds=(0,), budget=Budget(trials=2, train=train)
    )
    out = capsys.readouterr().out
    assert "mlp trial 1/2: valid loss" in out and "mlp trial 2/2" in out
    assert threads == [1, 1]  # benchmarks/tabular_threads.py: one thread is faster on small CPUs
    report = results.report("mlp")
    assert report.summary["accuracy"] == pytest.approx(results.frame.iloc[-1]["accuracy"])
    assert list(report.per_class.index) == ["0", "1"] and "roc_auc" in report.summary
    with pytest.raises(KeyError, match="No run"):
        results.report("xgboost")


def test_every_model_gets_the_same_optuna_budget_and_a_seed_reproduces_the_comparison():
    table = synthetic_table(400, cardinality=6)
    budget = Budget(trials=3, train=TrainConfig(epochs=3, progress=False), max_rounds=30)

    def run():
        return compare(table, models=("xgboost", "mlp"), seeds=(1,), budget=budget, progress=False)

    first, again = run(), run()
    n = int(first.frame["n_train"].iloc[0])
    assert set(first.studies) == {("xgboost", 1, n), ("mlp", 1, n)}  # the majority is not tuned
    for model in ("xgboost", "mlp"):
        trials = first.studies[(model, 1, n)].trials
        assert len(trials) == budget.trials and all(t.state.is_finished() for t in trials)
        assert trials[0].params == DEFAULTS[model]  # the defaults first, then TPE
        assert trials[1].params != trials[0].params
        best = min(t.value for t in trials if t.value is not None)
        row = first.frame.set_index("model").loc[model]
        assert row["valid_loss"] == pytest.approx(best)  # the best trial on validation is chosen
    cols = ["model", "accuracy", "log_loss", "valid_loss", "epochs", "hyperparameters"]
    pd.testing.assert_frame_equal(first.frame[cols], again.frame[cols])
    assert [t.params for t in first.studies[("mlp", 1, n)].trials] == [
        t.params for t in again.studies[("mlp", 1, n)].trials
    ]
