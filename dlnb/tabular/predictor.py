"""One trained model of your own table, ready to use: `fit_table` trains it (preprocessing fitted
on the training rows only, early stopping on validation, scored once on test), `.predict(rows)`
labels new DataFrame rows, `.save(dir)` / `load_tabular(dir)` keep it with its preprocessing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlnb.data.loaders import make_loaders
from dlnb.runtime import cpu_threads
from dlnb.tabular.models import DEFAULTS, build_model
from dlnb.tabular.preprocess import Preprocessor, Split, fit_preprocessor, make_split
from dlnb.tabular.tables import Table
from dlnb.train import loop
from dlnb.train.callbacks import EarlyStopping
from dlnb.train.card import ModelCard, metrics_on
from dlnb.train.config import TrainConfig
from dlnb.train.report import Report, report_from_probs
from dlnb.train.saving import load_model_files, load_weights_into, save_model

__all__ = ["TabularModel", "fit_table", "load_tabular"]


@dataclass
class TabularModel:
    """A trained network with the preprocessing and label names it needs to label raw rows."""

    net: nn.Module
    pre: Preprocessor
    model: str
    params: dict
    task: str
    classes: tuple[str, ...]
    target: str = "target"
    scale: tuple[float, float] = (0.0, 1.0)  # regression: the targets' training mean and std
    report: Report | None = None  # on the test rows, after `fit_table`
    about: dict | None = None  # the data and test set `fit_table` used, for the model card

    def outputs(self, rows: pd.DataFrame) -> np.ndarray:
        """Class probabilities (classification) or predictions (regression) of raw `rows`."""
        rows = _as_rows(rows)
        if not isinstance(rows, pd.DataFrame):
            raise TypeError(
                f"predict takes a DataFrame of raw rows (the training columns), not "
                f"{type(rows).__name__}; e.g. pd.read_csv(path) or df.iloc[:5]."
            )
        features = rows.drop(columns=[self.target], errors="ignore")
        self.pre.check_columns(features)
        x_num, x_cat = self.pre.transform(features[list(self.pre.numeric + self.pre.categorical)])
        device = next(self.net.parameters()).device
        with torch.no_grad():
            self.net.eval()
            out = self.net(torch.from_numpy(x_num).to(device), torch.from_numpy(x_cat).to(device))
        if self.task == "regression":
            return out.reshape(-1).cpu().numpy() * self.scale[1] + self.scale[0]
        return torch.softmax(out.float(), 1).cpu().numpy()

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Per row: the predicted `label` and each class's probability (or the `prediction`)."""
        rows = _as_rows(rows)
        out = self.outputs(rows)
        if self.task == "regression":
            return pd.DataFrame({"prediction": out}, index=rows.index)
        frame = pd.DataFrame(out, columns=[f"p({c})" for c in self.classes], index=rows.index)
        frame.insert(0, "label", np.asarray(self.classes, dtype=object)[out.argmax(1)])
        return frame

    def save(self, directory: str | Path, card: ModelCard | dict | None = None) -> Path:
        """Write the weights (safetensors), preprocessing, labels and settings (JSON) and a model
        card: `card`, or one filled from the fit (fields in a `card` dict override it)."""
        pre = {f.name: _plain(getattr(self.pre, f.name)) for f in fields(self.pre)}
        meta = {
            "kind": "dlnb.tabular",
            "model": self.model,
            "params": self.params,
            "task": self.task,
            "classes": list(self.classes),
            "target": self.target,
            "scale": list(self.scale),
            "preprocessor": pre,
        }
        if not isinstance(card, ModelCard):
            known, given = self._card_fields(), dict(card or {})
            given["data"] = {**known["data"], **given.get("data", {})}  # e.g. dataset_provenance
            card = {**known, **given}
        return save_model(directory, self.net, meta, card)

    def _card_fields(self) -> dict[str, Any]:
        """What this model knows for its card: data, test metrics, labels, default use and limits."""
        about = self.about or {}
        test = about.get("test_set")
        metrics = {} if self.report is None or test is None else self.report.summary
        return {
            "name": f"{self.model} on {about.get('data', {}).get('name', 'a table')}",
            "description": f"A {self.task} {self.model} predicting `{self.target}`"
            + (f" ({', '.join(self.classes)})" if self.classes else "")
            + f" from columns {list(self.pre.numeric + self.pre.categorical)}.",
            "data": about.get("data", {}),
            "metrics": metrics_on(metrics, **test) if test else [],
            "intended_use": f"Predicting `{self.target}` for new rows with the training columns, "
            "from the same source as the training table.",
            "limitations": [
                "Its test rows are a held-out split of its own table: rows from another "
                "source, period or population are untested.",
                *([] if metrics else ["No test metrics were recorded with this save."]),
            ],
        }


def _as_rows(rows: Any) -> Any:
    """One row (`df.iloc[i]`, a Series) as a one-row DataFrame; anything else unchanged."""
    return rows.to_frame().T.infer_objects() if isinstance(rows, pd.Series) else rows


def _rows_fingerprint(rows: pd.DataFrame, y: np.ndarray) -> str:
    """A short sha256 of some rows' values and targets (their index left out)."""
    h = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    h.update(np.asarray(y).tobytes())
    return h.hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A preprocessor field as JSON values (arrays to lists, tuples to lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: list(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


def load_tabular(directory: str | Path) -> TabularModel:
    """The `TabularModel` that `.save(directory)` wrote (its weights' hash and shapes checked)."""
    state, meta = load_model_files(directory)
    if meta.get("kind") != "dlnb.tabular":
        raise ValueError(f"{directory} holds a {meta.get('kind')!r} model, not a tabular one.")
    p = meta["preprocessor"]
    quantiles = None if p["quantiles"] is None else np.asarray(p["quantiles"])
    pre = Preprocessor(
        tuple(p["numeric"]),
        tuple(p["categorical"]),
        np.asarray(p["fill"]),
        tuple(p["indicators"]),
        p["scaling"],
        np.asarray(p["mean"]),
        np.asarray(p["std"]),
        quantiles,
        {k: tuple(v) for k, v in p["levels"].items()},
    )
    n_out = 1 if meta["task"] == "regression" else len(meta["classes"])
    net = build_model(meta["model"], meta["params"], pre.n_numeric_out, pre.cardinalities, n_out)
    load_weights_into(net, state, str(directory))
    scale = (float(meta["scale"][0]), float(meta["scale"][1]))
    return TabularModel(
        net,
        pre,
        meta["model"],
        meta["params"],
        meta["task"],
        tuple(meta["classes"]),
        meta["target"],
        scale,
    )


def _settings(
    config: TrainConfig | None, params: dict, given: dict, task: str, seed: int
) -> TrainConfig:
    """What `fit_table` trains with: the caller's `config`, only its fields left at TrainConfig's
    defaults filled in (lr and weight_decay from the model's `params`, the task's loss, `seed`);
    without a config, 50 epochs without a progress bar. `given` is the caller's own `params`."""
    unset = TrainConfig()
    base = config if config is not None else TrainConfig(epochs=50, progress=False)
    loss = "mse" if task == "regression" else "cross_entropy"
    if base.loss not in (unset.loss, loss):
        raise ValueError(
            f"A {task} table trains with loss={loss!r}, but config sets loss={base.loss!r}; "
            "leave config.loss unset."
        )
    for name in ("lr", "weight_decay"):
        mine, theirs = getattr(base, name), given.get(name)
        if theirs is not None and mine not in (getattr(unset, name), theirs):
            raise ValueError(
                f"{name} is set twice, params={{{name!r}: {theirs}}} and config.{name}={mine}: "
                "set it in one place."
            )
    fill = {"lr": params["lr"], "weight_decay": params["weight_decay"], "loss": loss, "seed": seed}
    return replace(base, **{k: v for k, v in fill.items() if getattr(base, k) == getattr(unset, k)})


def _provenance(table: Table, split: Split, seed: int) -> dict:
    """The data and the test set a fit used, for the model card (row counts and fingerprints)."""
    fingerprint = {
        name: {"rows": len(rows), "sha256": _rows_fingerprint(table.X.iloc[rows], table.y[rows])}
        for name, rows in (("train", split.train), ("valid", split.valid))
    }
    return {
        "data": {"name": table.name, "rows": len(table), "fingerprint": fingerprint},
        "test_set": {
            "name": f"{table.name} test split (seed {seed})",
            "size": len(split.test),
            "fingerprint": _rows_fingerprint(table.X.iloc[split.test], table.y[split.test]),
        },
    }


def fit_table(
    table: Table,
    model: str = "mlp",
    *,
    params: dict | None = None,
    config: TrainConfig | None = None,
    patience: int = 5,
    seed: int = 0,
    target: str = "target",
    threads: int | None = 1,
    callbacks: list | None = None,
) -> TabularModel:
    """Train one network ("mlp", "emb_mlp", "ft_transformer") on `table` and score it on test.

    The training settings are `config` as the caller set it: only fields left at TrainConfig's
    defaults get fit_table's (lr and weight decay the model's, the task's loss, `seed`); without
    a config, also 50 epochs and no progress bar. The lr and weight decay trained with are
    recorded in the model's `params` (saved, and reused by `lifecycle.train_like`).

    Args:
        table: the data, e.g. from `dlnb.tabular.from_csv(path, target=...)`.
        model: "mlp", "emb_mlp" or "ft_transformer".
        params: hyperparameters overriding the model's defaults (`lr`, `weight_decay` too).
        config: training settings, e.g. `TrainConfig(class_weight="balanced")`.
        patience: epochs without a better validation loss before training stops.
        seed: the split (`make_split(table, seed)`: stratified; an official test split stays the
            test), the initial weights, and the fit's seed unless `config.seed` is set.
        target: the column `predict` drops from raw rows.
        threads: caps torch's CPU threads while training, one by default like `compare` (see
            benchmarks/tabular_threads.py; None: no cap).
        callbacks: go to `fit` after early stopping, e.g. `lifecycle.TrackingCallback()`.
    """
    if not isinstance(table, Table):
        raise TypeError(
            f"fit_table takes a Table, not {type(table).__name__}: read your file or DataFrame "
            "with dlnb.tabular.from_csv(path_or_df, target=...) first."
        )
    if model not in DEFAULTS or model == "xgboost":
        raise ValueError(f"fit_table trains mlp, emb_mlp or ft_transformer, not {model!r}.")
    given = dict(params or {})
    params = {**DEFAULTS[model], **given}
    settings = _settings(config, params, given, table.task, seed)
    params |= {"lr": settings.lr, "weight_decay": settings.weight_decay}
    split = make_split(table, seed)
    pre = fit_preprocessor(table.X.iloc[split.train], table.categorical)
    regression = table.task == "regression"
    y_train = table.y[split.train]
    scale = (float(y_train.mean()), float(y_train.std()) or 1.0) if regression else (0.0, 1.0)

    def part(rows: np.ndarray) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        x_num, x_cat = pre.transform(table.X.iloc[rows])
        y = (table.y[rows] - scale[0]) / scale[1] if regression else table.y[rows]
        y_t = torch.as_tensor(y, dtype=torch.float32 if regression else torch.long)
        return (torch.from_numpy(x_num), torch.from_numpy(x_cat)), y_t

    torch.manual_seed(seed)
    n_out = 1 if regression else len(table.classes)
    net = build_model(model, params, pre.n_numeric_out, pre.cardinalities, n_out)
    batch_size = min(256, max(16, len(split.train) // 10))
    loaders = make_loaders(*part(split.train), valid=part(split.valid), batch_size=batch_size)
    with cpu_threads(threads):
        loop.fit(net, loaders, settings, [EarlyStopping(patience=patience), *(callbacks or [])])
    result = TabularModel(net, pre, model, params, table.task, table.classes, target, scale)
    result.about = _provenance(table, split, seed)
    if not regression:
        probs = result.outputs(table.X.iloc[split.test])
        result.report = report_from_probs(table.y[split.test], probs, table.classes)
    return result
