"""A fair comparison of gradient boosting and deep models on one table.

Every model gets the same splits, the same seeds and the same tuning budget: `Budget.trials`
random-search trials (the defaults first), each trained with early stopping on the validation
split, the best trial chosen by its validation loss (log loss, or RMSE for regression) and scored
once on the test split. Costs are measured too: training wall-clock (of the chosen trial and of
the whole search), inference time per 1,000 rows, and size (parameters, or trees and leaves).

    results = compare(load_table("breast_cancer"), seeds=(0, 1, 2), budget=Budget(trials=4))
    results.table(); results.plot()
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from dlnb.data.loaders import make_loaders
from dlnb.data.resident import GpuLoader
from dlnb.models import count_parameters
from dlnb.runtime import Timer, cpu_threads
from dlnb.tabular.models import build_model, sample_params
from dlnb.tabular.preprocess import Preprocessor, Split, fit_preprocessor, make_split
from dlnb.tabular.results import Results, scores
from dlnb.tabular.tables import Table
from dlnb.train.config import TrainConfig
from dlnb.train.loop import resolve_device

MODELS = ("xgboost", "mlp", "emb_mlp", "ft_transformer")


@dataclass(frozen=True)
class Budget:
    """The tuning budget every model gets: the same number of trials, each with early stopping.

    `train` configures every neural-network trial (`train.epochs` at most, stopped after
    `patience` epochs without progress) and the device of the whole comparison; each trial sets
    its own `lr` and `weight_decay` (tuned), `loss` (from the task) and `seed`.
    """

    trials: int = 4
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100, progress=False))
    patience: int = 8
    max_rounds: int = (
        2000  # XGBoost: boosting rounds at most, stopped after `early_stopping_rounds`
    )
    early_stopping_rounds: int = 50
    batch_size: int = 256  # at most; small training sets get smaller batches (>= 10 steps an epoch)


@dataclass
class _Part:
    """One split part, ready for every model."""

    x_num: np.ndarray
    x_cat: np.ndarray
    frame: pd.DataFrame  # for XGBoost
    y: np.ndarray


def _tensors(part: _Part, y: np.ndarray) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A part as the neural models take it: inputs `(x_num, x_cat)` and targets `y`."""
    return (torch.from_numpy(part.x_num), torch.from_numpy(part.x_cat)), torch.from_numpy(y)


def _valid_loss(task: str, y: np.ndarray, out: np.ndarray, n_classes: int) -> float:
    s = scores(task, y, out, n_classes)
    return s["rmse"] if task == "regression" else s["log_loss"]


def _timed_predict(predict, part: _Part, device) -> tuple[np.ndarray, float]:
    """Predictions on `part` and the best of three timings, in milliseconds per 1,000 rows."""
    best = math.inf
    for _ in range(3):
        with Timer(device) as t:
            out = predict(part)
        best = min(best, t.seconds)
    return out, 1e6 * best / max(len(part.y), 1)


def _run_xgboost(
    params: dict,
    data: dict[str, _Part],
    task: str,
    n_classes: int,
    budget: Budget,
    device: torch.device,
    seed: int,
    threads: int | None = None,
) -> dict:
    import xgboost as xgb

    common = {
        "tree_method": "hist",
        "enable_categorical": True,
        "random_state": seed,
        "n_jobs": threads,
        "n_estimators": budget.max_rounds,
        "early_stopping_rounds": budget.early_stopping_rounds,
        "device": "cuda" if device.type == "cuda" else "cpu",
        **params,
    }
    if task == "regression":
        model = xgb.XGBRegressor(eval_metric="rmse", **common)
    else:
        model = xgb.XGBClassifier(eval_metric="logloss" if n_classes == 2 else "mlogloss", **common)
    train, valid = data["train"], data["valid"]
    with Timer(device) as t:
        model.fit(train.frame, train.y, eval_set=[(valid.frame, valid.y)], verbose=False)

    def predict(part: _Part) -> np.ndarray:
        return (
            model.predict(part.frame) if task == "regression" else model.predict_proba(part.frame)
        )

    rounds = model.best_iteration + 1
    trees = rounds * (n_classes if n_classes > 2 else 1)
    dump = model.get_booster()[:rounds].get_dump()
    return {
        "model": model,
        "predict": predict,
        "seconds": t.seconds,
        "epochs": rounds,
        "params": math.nan,
        "trees": trees,
        "leaves": sum(d.count("leaf=") for d in dump),
    }


def _run_neural(
    name: str,
    params: dict,
    data: dict[str, _Part],
    task: str,
    n_classes: int,
    pre: Preprocessor,
    budget: Budget,
    device: torch.device,
    seed: int,
) -> dict:
    from dlnb.train.callbacks import EarlyStopping
    from dlnb.train.loop import fit, predict

    regression = task == "regression"
    mu, sd = (
        (float(data["train"].y.mean()), float(data["train"].y.std()) or 1.0)
        if regression
        else (0.0, 1.0)
    )

    def target(part: _Part) -> np.ndarray:
        return ((part.y - mu) / sd).astype(np.float32) if regression else part.y.astype(np.int64)

    torch.manual_seed(seed)
    net = build_model(
        name, params, pre.n_numeric_out, pre.cardinalities, 1 if regression else n_classes
    )
    batch_size = min(budget.batch_size, max(16, len(data["train"].y) // 10))
    loaders = make_loaders(  # resident tensors, batched by slicing (no per-row collation)
        *_tensors(data["train"], target(data["train"])),
        valid=_tensors(data["valid"], target(data["valid"])),
        batch_size=batch_size,
        eval_batch_size=4096,
        seed=seed,
        device=device,
    )
    config = replace(
        budget.train,
        lr=params["lr"],
        weight_decay=params["weight_decay"],
        loss="mse" if regression else "cross_entropy",
        seed=seed,
    )
    with Timer(device) as t:
        history = fit(
            net, loaders, config, [EarlyStopping(patience=budget.patience)], device=device
        )

    def predict_part(part: _Part) -> np.ndarray:
        loader = GpuLoader(*_tensors(part, target(part)), 4096, shuffle=False, device=device)
        logits, _ = predict(net, loader, device)
        if regression:
            return logits.reshape(-1) * sd + mu
        return torch.softmax(torch.from_numpy(logits), 1).numpy()

    return {
        "model": net,
        "predict": predict_part,
        "seconds": t.seconds,
        "epochs": len(history.records),
        "params": count_parameters(net),
        "trees": math.nan,
        "leaves": math.nan,
    }


def _run_majority(data: dict[str, _Part], task: str, n_classes: int) -> dict:
    y = data["train"].y
    if task == "regression":

        def predict(part: _Part) -> np.ndarray:
            return np.full(len(part.y), float(y.mean()))
    else:
        freq = np.bincount(y, minlength=n_classes) / len(y)

        def predict(part: _Part) -> np.ndarray:
            return np.tile(freq, (len(part.y), 1))

    return {
        "model": None,
        "predict": predict,
        "seconds": 0.0,
        "epochs": 0,
        "params": 0,
        "trees": math.nan,
        "leaves": math.nan,
    }


def _prepare(table: Table, split: Split, train_rows: np.ndarray, scaling: str) -> tuple:
    """Fit the preprocessor on the training rows only, then transform every part."""
    pre = fit_preprocessor(table.X.iloc[train_rows], table.categorical, scaling=scaling)
    data = {}
    for part, rows in (("train", train_rows), ("valid", split.valid), ("test", split.test)):
        X = table.X.iloc[rows]
        x_num, x_cat = pre.transform(X)
        data[part] = _Part(x_num, x_cat, pre.to_xgboost(X), table.y[rows])
    return pre, data


def _train_rows(table: Table, split: Split, n_train: int | None, seed: int) -> np.ndarray:
    """A stratified, seeded subset of `n_train` training rows (all of them when None or larger)."""
    from sklearn.model_selection import train_test_split

    if n_train is None or n_train >= len(split.train):
        return split.train
    strat = None if table.task == "regression" else table.y[split.train]
    rows, _ = train_test_split(split.train, train_size=n_train, random_state=seed, stratify=strat)
    return np.sort(rows)


def _tune(
    name: str,
    task: str,
    data: dict[str, _Part],
    pre: Preprocessor,
    n_classes: int,
    budget: Budget,
    fixed: dict,
    device: torch.device,
    seed: int,
    threads: int | None,
    progress: bool = False,
) -> dict:
    """Run `budget.trials` random-search trials of model `name`; the best on validation wins."""
    rng = np.random.default_rng([seed, len(data["train"].y)])
    best: dict | None = None
    for trial in range(1 if name == "majority" else budget.trials):
        if name == "majority":
            params, run = {}, _run_majority(data, task, n_classes)
        elif name == "xgboost":
            params = {**sample_params(name, rng, trial), **fixed}
            run = _run_xgboost(params, data, task, n_classes, budget, device, seed, threads)
        else:
            params = {**sample_params(name, rng, trial), **fixed}
            run = _run_neural(name, params, data, task, n_classes, pre, budget, device, seed)
        run["valid"] = _valid_loss(task, data["valid"].y, run["predict"](data["valid"]), n_classes)
        run["hyper"] = params
        if progress and name != "majority":
            print(
                f"  {name} trial {trial + 1}/{budget.trials}: valid loss {run['valid']:.4f}, "
                f"{run['epochs']} epochs/rounds, {run['seconds']:.1f}s",
                flush=True,
            )
        if best is None or run["valid"] < best["valid"]:
            best = run
    assert best is not None, "compare checks that Budget.trials >= 1"
    return best


def compare(
    table: Table,
    models: tuple[str, ...] = MODELS,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    budget: Budget = Budget(),
    train_sizes: tuple[int | None, ...] = (None,),
    overrides: dict[str, dict] | None = None,
    scaling: str = "quantile",
    valid_fraction: float = 0.15,
    test_fraction: float = 0.2,
    threads: int | None = 1,
    progress: bool = True,
) -> Results:
    """Tune and test every model on `table` under the same splits, seeds and budget, on the
    device `budget.train.device` names.

    `overrides` fixes hyperparameters of a model in every trial, e.g. a small FT-Transformer on a
    CPU: `{"ft_transformer": {"d_token": 32, "n_blocks": 1}}`. `threads` caps the CPU threads of
    torch and XGBoost during the comparison: 1 by default (benchmarks/tabular_threads.py measured
    an FT-Transformer step slower with more threads on a small shared CPU), None for no cap.
    `progress` prints every model's result and, with several trials, every trial's.
    """
    if not isinstance(table, Table):
        raise TypeError(
            f"compare takes a Table, not {type(table).__name__}: read a CSV/TSV file or a "
            "DataFrame with dlnb.tabular.from_csv(path_or_df, target=...) (or table_from_frame), "
            "a registered dataset with load_table(name)."
        )
    overrides = overrides or {}
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"Unknown models {unknown}; choose from {MODELS}.")
    if budget.trials < 1 or not seeds:
        raise ValueError("compare needs at least one seed and Budget.trials >= 1.")
    dev = resolve_device(budget.train)
    n_classes = 1 if table.task == "regression" else int(max(len(table.classes), table.y.max() + 1))
    rows, predictions = [], {}
    with cpu_threads(threads):
        for seed in seeds:
            split = make_split(table, seed, valid_fraction, test_fraction)
            for n_train in train_sizes:
                pre, data = _prepare(
                    table, split, _train_rows(table, split, n_train, seed), scaling
                )
                n = len(data["train"].y)
                for name in ("majority", *models):
                    start = time.perf_counter()
                    best = _tune(
                        name,
                        table.task,
                        data,
                        pre,
                        n_classes,
                        budget,
                        overrides.get(name, {}),
                        dev,
                        seed,
                        threads,
                        progress,
                    )
                    tune_seconds = time.perf_counter() - start
                    test = data["test"]
                    out, infer_ms = _timed_predict(best["predict"], test, dev)
                    rows.append(
                        {
                            "dataset": table.name,
                            "task": table.task,
                            "model": name,
                            "seed": seed,
                            "n_train": n,
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
                    )
                    predictions[(name, seed, n)] = {
                        "test_rows": split.test,
                        "test": out,
                        "valid_rows": split.valid,
                        "valid": best["predict"](data["valid"]),
                    }
                    if progress:
                        metric = "rmse" if table.task == "regression" else "accuracy"
                        print(
                            f"{table.name} seed={seed} n_train={n} {name:<15} "
                            f"{metric}={rows[-1][metric]:.4f} tune={tune_seconds:.1f}s",
                            flush=True,
                        )
    return Results(pd.DataFrame(rows), predictions, table)
