"""A fair comparison of gradient boosting and deep models on one table.

Every model gets the same splits, the same seeds and the same tuning budget: an Optuna study of
`Budget.trials` trials (the defaults first, then seeded TPE), each trained with early stopping on
the validation split, the best trial chosen by its validation loss (log loss, or RMSE for
regression) and scored once on the test split; `Results.studies` keeps every study. Costs are
measured too: training wall-clock (of the chosen trial and of the whole search), inference time
per 1,000 rows, and size (parameters, or trees and leaves).

    results = compare(load_table("breast_cancer"), seeds=(0, 1, 2), budget=Budget(trials=4))
    results.table(); results.plot()
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd

from dlnb.runtime import Timer, cpu_threads
from dlnb.tabular.preprocess import Split, fit_preprocessor, make_split
from dlnb.tabular.results import Results, scores
from dlnb.tabular.tables import Table
from dlnb.tabular.trials import Budget, Part, tune_model
from dlnb.train.loop import resolve_device
from dlnb.train.tracking import log_comparison

MODELS = ("xgboost", "mlp", "emb_mlp", "ft_transformer")
DEFAULT_BUDGET = Budget()  # frozen: one shared default is safe


def _timed_predict(predict, part: Part, device) -> tuple[np.ndarray, float]:
    """Predictions on `part` and the best of three timings, in milliseconds per 1,000 rows."""
    best = math.inf
    for _ in range(3):
        with Timer(device) as t:
            out = predict(part)
        best = min(best, t.seconds)
    return out, 1e6 * best / max(len(part.y), 1)


def _prepare(table: Table, split: Split, train_rows: np.ndarray, scaling: str) -> tuple:
    """Fit the preprocessor on the training rows only, then transform every part."""
    pre = fit_preprocessor(table.X.iloc[train_rows], table.categorical, scaling=scaling)
    data = {}
    for part, rows in (("train", train_rows), ("valid", split.valid), ("test", split.test)):
        X = table.X.iloc[rows]
        x_num, x_cat = pre.transform(X)
        data[part] = Part(x_num, x_cat, pre.to_xgboost(X), table.y[rows])
    return pre, data


def _train_rows(table: Table, split: Split, n_train: int | None, seed: int) -> np.ndarray:
    """A stratified, seeded subset of `n_train` training rows (all of them when None or larger)."""
    from sklearn.model_selection import train_test_split

    if n_train is None or n_train >= len(split.train):
        return split.train
    strat = None if table.task == "regression" else table.y[split.train]
    rows, _ = train_test_split(split.train, train_size=n_train, random_state=seed, stratify=strat)
    return np.sort(rows)


def _check(table: Table, models: tuple[str, ...], seeds: tuple[int, ...], budget: Budget) -> None:
    """Raise on what `compare` cannot run: not a Table, an unknown model, no seed or no trial."""
    if not isinstance(table, Table):
        raise TypeError(
            f"compare takes a Table, not {type(table).__name__}: read a CSV/TSV file or a "
            "DataFrame with dlnb.tabular.from_csv(path_or_df, target=...) (or table_from_frame), "
            "a registered dataset with load_table(name)."
        )
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"Unknown models {unknown}; choose from {MODELS}.")
    if budget.trials < 1 or not seeds:
        raise ValueError("compare needs at least one seed and Budget.trials >= 1.")


def _result(
    table: Table,
    name: str,
    seed: int,
    data: dict[str, Part],
    best: dict,
    n_classes: int,
    device,
    tune_seconds: float,
) -> tuple[dict, np.ndarray]:
    """One tuned model's result row (test scores and costs) and its test predictions."""
    test = data["test"]
    out, infer_ms = _timed_predict(best["predict"], test, device)
    row = {
        "dataset": table.name,
        "task": table.task,
        "model": name,
        "seed": seed,
        "n_train": len(data["train"].y),
        **scores(table.task, test.y, out, n_classes),
        "valid_loss": best["valid"],
        "train_seconds": best["seconds"],
        "tune_seconds": tune_seconds,
        "infer_ms_per_1k": infer_ms,
        "params": best["params"],
        "trees": best["trees"],
        "leaves": best["leaves"],
        "epochs": best["epochs"],
        "hyperparameters": json.dumps(best["hyper"]),
    }
    return row, out


def compare(
    table: Table,
    models: tuple[str, ...] = MODELS,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    budget: Budget = DEFAULT_BUDGET,
    train_sizes: tuple[int | None, ...] = (None,),
    overrides: dict[str, dict] | None = None,
    scaling: str = "quantile",
    valid_fraction: float = 0.15,
    test_fraction: float = 0.2,
    threads: int | None = 1,
    progress: bool = True,
    track: bool | str = False,
) -> Results:
    """Tune and test every model on `table` under the same splits, seeds and budget, on the
    device `budget.train.device` names; the majority class is scored beside them.

    Args:
        table: the data (`load_table(name)`, or yours with `from_csv`).
        models: which of `MODELS` to compare.
        seeds: one split (and one study per model) per seed.
        budget: trials per model, the neural trials' TrainConfig and early stopping.
        train_sizes: training rows to use (a stratified seeded subset; None: all of them).
        overrides: hyperparameters a model keeps fixed in every trial, e.g. a small
            FT-Transformer on a CPU: `{"ft_transformer": {"d_token": 32, "n_blocks": 1}}`.
        scaling: how numeric columns are scaled ("quantile", or "standard").
        valid_fraction: share of the rows held out for validation (early stopping, tuning).
        test_fraction: share of the rows held out for test (unless the table has a test split).
        threads: caps the CPU threads of torch and XGBoost during the comparison: 1 by default
            (benchmarks/tabular_threads.py measured an FT-Transformer step slower with more
            threads on a small shared CPU), None for no cap.
        progress: print every model's result and, with several trials, every trial's.
        track: log one MLflow run per result row under a parent run, in experiment "dlnb"
            (True) or the one named.
    """
    _check(table, models, seeds, budget)
    overrides = overrides or {}
    dev = resolve_device(budget.train)
    n_classes = 1 if table.task == "regression" else int(max(len(table.classes), table.y.max() + 1))
    rows, predictions, studies = [], {}, {}
    with cpu_threads(threads):
        for seed in seeds:
            split = make_split(table, seed, valid_fraction, test_fraction)
            for n_train in train_sizes:
                train_rows = _train_rows(table, split, n_train, seed)
                pre, data = _prepare(table, split, train_rows, scaling)
                for name in ("majority", *models):
                    start = time.perf_counter()
                    fixed = overrides.get(name, {})
                    args = (name, table.task, data, pre, n_classes, budget, fixed, dev, seed)
                    best = tune_model(*args, threads, progress)
                    tune_seconds = time.perf_counter() - start
                    row, out = _result(table, name, seed, data, best, n_classes, dev, tune_seconds)
                    rows.append(row)
                    key = (name, seed, row["n_train"])
                    if best["study"] is not None:
                        studies[key] = best["study"]
                    predictions[key] = {
                        "test_rows": split.test,
                        "test": out,
                        "valid_rows": split.valid,
                        "valid": best["predict"](data["valid"]),
                    }
                    if progress:
                        metric = "rmse" if table.task == "regression" else "accuracy"
                        print(
                            f"{table.name} seed={seed} n_train={row['n_train']} {name:<15} "
                            f"{metric}={row[metric]:.4f} tune={tune_seconds:.1f}s",
                            flush=True,
                        )
    if track:
        experiment = track if isinstance(track, str) else "dlnb"
        log_comparison(rows, experiment, models=models, seeds=seeds, trials=budget.trials)
    return Results(pd.DataFrame(rows), predictions, table, studies)
