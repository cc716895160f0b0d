"""One model's tuning in the comparison: an Optuna study of `Budget.trials` trials, each a fit of
XGBoost or a network on the prepared split parts (or the majority class, untuned), scored by its
validation loss."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import optuna
import pandas as pd
import torch

from dlnb.data.loaders import make_loaders
from dlnb.data.resident import GpuLoader
from dlnb.models import count_parameters
from dlnb.runtime import Timer
from dlnb.tabular.models import DEFAULTS, build_model, suggest_params
from dlnb.tabular.preprocess import Preprocessor
from dlnb.tabular.results import scores
from dlnb.train import loop
from dlnb.train.callbacks import Callback, EarlyStopping
from dlnb.train.config import TrainConfig
from dlnb.train.tuning import PruneOnValLoss, tune


@dataclass(frozen=True)
class Budget:
    """The tuning budget every model gets: the same number of trials, each with early stopping.

    `train` configures every neural-network trial (`train.epochs` at most, stopped after
    `patience` epochs without progress) and the device of the whole comparison; each trial sets
    its own `lr` and `weight_decay` (tuned), `loss` (from the task) and `seed`.

    With `prune`, a neural trial whose validation loss falls behind the median of the earlier
    trials at the same epoch is stopped (`dlnb.train.tuning.default_pruner`: never before 5 trials
    finished). A pruned trial counts as one of the `trials` and is never chosen, so every model
    runs exactly `trials` trials; XGBoost trials are not pruned (each already stops after
    `early_stopping_rounds` rounds without progress).
    """

    trials: int = 4
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100, progress=False))
    patience: int = 8
    max_rounds: int = (
        2000  # XGBoost: boosting rounds at most, stopped after `early_stopping_rounds`
    )
    early_stopping_rounds: int = 50
    batch_size: int = 256  # at most; small training sets get smaller batches (>= 10 steps an epoch)
    prune: bool = True


@dataclass
class Part:
    """One split part, ready for every model."""

    x_num: np.ndarray
    x_cat: np.ndarray
    frame: pd.DataFrame  # for XGBoost
    y: np.ndarray


def _tensors(part: Part, y: np.ndarray) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A part as the neural models take it: inputs `(x_num, x_cat)` and targets `y`."""
    return (torch.from_numpy(part.x_num), torch.from_numpy(part.x_cat)), torch.from_numpy(y)


def _valid_loss(task: str, y: np.ndarray, out: np.ndarray, n_classes: int) -> float:
    s = scores(task, y, out, n_classes)
    return s["rmse"] if task == "regression" else s["log_loss"]


def _run_xgboost(
    params: dict,
    data: dict[str, Part],
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

    def predict(part: Part) -> np.ndarray:
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
    data: dict[str, Part],
    task: str,
    n_classes: int,
    pre: Preprocessor,
    budget: Budget,
    device: torch.device,
    seed: int,
    trial: optuna.Trial | None = None,
) -> dict:
    regression = task == "regression"
    mu, sd = (
        (float(data["train"].y.mean()), float(data["train"].y.std()) or 1.0)
        if regression
        else (0.0, 1.0)
    )

    def target(part: Part) -> np.ndarray:
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
    callbacks: list[Callback] = [EarlyStopping(patience=budget.patience)]
    if trial is not None and budget.prune:
        callbacks.append(PruneOnValLoss(trial))
    with Timer(device) as t:
        history = loop.fit(net, loaders, config, callbacks, device=device)

    def predict_part(part: Part) -> np.ndarray:
        loader = GpuLoader(*_tensors(part, target(part)), 4096, shuffle=False, device=device)
        logits, _ = loop.predict(net, loader, device)
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


def _run_majority(data: dict[str, Part], task: str, n_classes: int) -> dict:
    y = data["train"].y
    if task == "regression":

        def predict(part: Part) -> np.ndarray:
            return np.full(len(part.y), float(y.mean()))
    else:
        freq = np.bincount(y, minlength=n_classes) / len(y)

        def predict(part: Part) -> np.ndarray:
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


def tune_model(
    name: str,
    task: str,
    data: dict[str, Part],
    pre: Preprocessor,
    n_classes: int,
    budget: Budget,
    fixed: dict,
    device: torch.device,
    seed: int,
    threads: int | None,
    progress: bool = False,
) -> dict:
    """Run a study of `budget.trials` trials of model `name`, seeded from (seed, training rows);
    the best on validation wins. Its run dict carries the study (None for the majority class).

    Args:
        name: "majority" (one untuned run), "xgboost" or a network of `dlnb.tabular.models`.
        task: "binary", "multiclass" or "regression".
        data: the prepared "train", "valid" and "test" parts.
        pre: the preprocessor fitted on the training rows (sizes of the network's inputs).
        n_classes: classes of the target (1 for regression).
        budget: trials, the neural trials' TrainConfig and early stopping, pruning.
        fixed: hyperparameters kept out of the search.
        device: where the networks (and XGBoost, on CUDA) train.
        seed: seeds every trial's fit and, with the training rows, the study.
        threads: XGBoost's threads (None: its default).
        progress: print every trial's validation loss.
    """
    if name == "majority":
        run = _run_majority(data, task, n_classes)
        valid = _valid_loss(task, data["valid"].y, run["predict"](data["valid"]), n_classes)
        return {**run, "valid": valid, "hyper": {}, "study": None}
    best: dict = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(name, trial, fixed)
        try:
            if name == "xgboost":
                run = _run_xgboost(params, data, task, n_classes, budget, device, seed, threads)
            else:
                run = _run_neural(
                    name, params, data, task, n_classes, pre, budget, device, seed, trial
                )
        except optuna.TrialPruned as pruned:
            if progress:
                print(f"  {name} trial {trial.number + 1}/{budget.trials}: pruned ({pruned})")
            raise
        run["valid"] = _valid_loss(task, data["valid"].y, run["predict"](data["valid"]), n_classes)
        run["hyper"] = params
        if progress:
            print(
                f"  {name} trial {trial.number + 1}/{budget.trials}: valid loss {run['valid']:.4f}, "
                f"{run['epochs']} epochs/rounds, {run['seconds']:.1f}s",
                flush=True,
            )
        if not best or run["valid"] < best["valid"]:
            best.update(run)
        return run["valid"]

    first = {k: v for k, v in DEFAULTS[name].items() if k not in fixed}
    study_seed = int(np.random.SeedSequence([seed, len(data["train"].y)]).generate_state(1)[0])
    study = tune(objective, trials=budget.trials, seed=study_seed, enqueue=[first])
    if not best:
        raise RuntimeError(f"Every {name} trial was pruned: no trial to choose.")
    return {**best, "study": study}
