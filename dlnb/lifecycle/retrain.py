"""Retraining on drift, one step per call: watch the live window with dlnb's drift monitor; on an
alert, train a candidate on the recent labelled rows, score it and the current model on recent
rows the candidate never trained on, and promote it only when it wins by the policy's margin.

Everything lives in a state folder, so a cron job or CI can run one step per invocation:

    state/registry/v0001/...   model versions (dlnb's saving format) and `current`, the pointer
    state/reference.csv        the window the live inputs are compared with
    state/state.json           policy, monitored features, step count, last decision
    state/decisions.jsonl      every decision, one JSON line each

    init_state("state", model, reference_rows, target="good", features=["length", ...])
    retrain_step("state", live_rows, labelled_rows)   # or: python -m dlnb retrain --state ...
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlnb.deploy.monitor import DriftThresholds, drift_report
from dlnb.lifecycle.registry import ModelRegistry, write_json
from dlnb.runtime import atomic_write
from dlnb.tabular.predictor import fit_table, load_tabular
from dlnb.tabular.tables import Table
from dlnb.train.report import report_from_probs
from dlnb.train.tracking import log_metrics, start_run

__all__ = [
    "Decision",
    "RetrainPolicy",
    "decisions_table",
    "init_state",
    "replay",
    "retrain_step",
    "score_model",
    "train_like",
]

STATE, REFERENCE, DECISIONS = "state.json", "reference.csv", "decisions.jsonl"
Train = Callable[[pd.DataFrame, Any], Any]  # (recent labelled rows, current model) -> candidate


@dataclass(frozen=True)
class RetrainPolicy:
    """When an alert leads to a new model: enough labelled rows, a held-out share of them to score
    both models on, the gain in `metric` the candidate needs, and steps to wait after a retrain."""

    metric: str = "roc_auc"
    higher_is_better: bool = True
    min_gain: float = 0.01
    min_labelled: int = 200
    holdout_fraction: float = 0.3
    cooldown_steps: int = 0  # steps (e.g. cron invocations) after a retrain without another
    seed: int = 0
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)

    @classmethod
    def from_dict(cls, values: dict) -> RetrainPolicy:
        """The policy `asdict(policy)` wrote (e.g. into state.json)."""
        return cls(**{**values, "thresholds": DriftThresholds(**values["thresholds"])})


@dataclass
class Decision:
    """What one step saw and did: `action` is no_alert, skipped, kept or promoted, with `reason`."""

    step: int
    action: str
    reason: str
    alert: bool
    drifted: list[str]
    max_psi: float
    version_before: str
    version_after: str
    current_score: float = math.nan
    candidate_score: float = math.nan
    gain: float = math.nan  # candidate minus current (sign flipped when lower is better)
    n_train: int = 0
    n_holdout: int = 0
    seconds: float = 0.0  # from the alert to the decision
    decided_at: str = ""
    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The decision as strict JSON values (a missing score is null, not NaN)."""
        return {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in asdict(self).items()
        }


def _read_state(state_dir: Path) -> dict:
    path = state_dir / STATE
    if not path.is_file():
        raise FileNotFoundError(
            f"{state_dir} holds no retraining state ({STATE}); create it once with "
            "dlnb.lifecycle.init_state(state_dir, model, reference_rows, target=..., features=...)."
        )
    return json.loads(path.read_text())


def _write_reference(state_dir: Path, rows: pd.DataFrame) -> None:
    with atomic_write(state_dir / REFERENCE, suffix=".csv.tmp") as f:
        rows.to_csv(f, index=False)


def init_state(
    state_dir: str | Path,
    model: Any,
    reference: pd.DataFrame,
    *,
    target: str,
    features: Iterable[str],
    categorical: Iterable[str] = (),
    policy: RetrainPolicy = RetrainPolicy(),
    save: Callable[[Any, Path], Any] | None = None,
) -> ModelRegistry:
    """Start a state folder: `model` registered as v0001 and current, `reference` (its
    `features`) as the reference window; returns the folder's model registry.

    Args:
        state_dir: the new state folder (an existing state is an error).
        model: the current model (for the defaults, a dlnb tabular model).
        reference: the rows the model was trained on: the window live rows are compared with.
        target: the label column of the labelled rows each step gets.
        features: the columns the drift monitor watches.
        categorical: which of `features` are categorical (compared by category shares).
        policy: when an alert leads to a new model.
        save: `save(model, folder)` writes a version (default `model.save(folder)`).
    """
    state_dir, features = Path(state_dir), list(features)
    if (state_dir / STATE).exists():
        raise FileExistsError(f"{state_dir} already holds a retraining state; use retrain_step.")
    missing = [c for c in features if c not in reference.columns]
    if missing:
        raise ValueError(f"The reference rows lack the monitored features {missing}.")
    registry = ModelRegistry(state_dir / "registry")
    registry.promote(registry.add(lambda folder: (save or _save)(model, folder)))
    _write_reference(state_dir, reference[features])
    state = {"target": target, "features": features, "categorical": list(categorical)}
    write_json(state_dir / STATE, {**state, "policy": asdict(policy), "step": 0})
    return registry


def _save(model: Any, folder: Path) -> None:
    model.save(folder)


def _labels(values: pd.Series, classes: tuple[str, ...]) -> np.ndarray:
    """Class indices of target values given as class names or as indices."""
    text = values.astype(str)
    if classes and text.isin(classes).all():
        return text.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)
    return values.to_numpy(dtype=np.int64)


def score_model(model: Any, rows: pd.DataFrame, target: str, metric: str = "roc_auc") -> float:
    """`metric` of a tabular model (`outputs`, `classes`, `task`) on labelled `rows` (other columns
    are ignored): a classification report's metric (accuracy, roc_auc, macro_f1 ...), or rmse
    for regression."""
    pre = getattr(model, "pre", None)  # a TabularModel takes exactly its training columns
    features = rows[list(pre.numeric + pre.categorical)] if pre is not None else rows
    out = model.outputs(features.drop(columns=[target], errors="ignore"))
    if model.task == "regression":
        return float(np.sqrt(np.mean((out - rows[target].to_numpy(dtype=np.float64)) ** 2)))
    summary = report_from_probs(_labels(rows[target], model.classes), out, model.classes).summary
    if metric not in summary:
        raise KeyError(f"No metric {metric!r}; a {model.task} model has {sorted(summary)}.")
    return float(summary[metric])


def train_like(rows: pd.DataFrame, current: Any, target: str, seed: int = 0) -> Any:
    """A `fit_table` of the current tabular model's kind and hyperparameters on `rows`."""
    columns = list(current.pre.numeric + current.pre.categorical)
    y = rows[target].to_numpy(dtype=np.float32) if current.task == "regression" else None
    table = Table(
        "recent rows",
        rows[columns].reset_index(drop=True),
        y if y is not None else _labels(rows[target], current.classes),
        current.task,
        tuple(current.pre.categorical),
        classes=current.classes,
    )
    return fit_table(table, current.model, params=current.params, seed=seed, target=target)


def _drift(state: dict, reference: pd.DataFrame, live: pd.DataFrame, policy: RetrainPolicy):
    missing = [c for c in state["features"] if c not in live.columns]
    if missing:
        raise ValueError(f"The live rows lack the monitored features {missing}.")
    as_arrays = {c: reference[c].to_numpy() for c in state["features"]}
    now = {c: live[c].to_numpy() for c in state["features"]}
    return drift_report(as_arrays, now, policy.thresholds, state["categorical"])


def _skip_reason(state: dict, policy: RetrainPolicy, step: int, n_labelled: int) -> str | None:
    last = state.get("last_retrain_step")
    if last is not None and step - last <= policy.cooldown_steps:
        return (
            f"cool-down: retrained at step {last}, {step - last} step(s) ago "
            f"(the policy waits {policy.cooldown_steps})"
        )
    if n_labelled < policy.min_labelled:
        return f"too few labelled rows: {n_labelled}, the policy needs {policy.min_labelled}"
    return None


def retrain_step(
    state_dir: str | Path,
    live: pd.DataFrame,
    labelled: pd.DataFrame,
    *,
    train: Train | None = None,
    evaluate: Callable[[Any, pd.DataFrame], float] | None = None,
    load: Callable[[Path], Any] | None = None,
    save: Callable[[Any, Path], Any] | None = None,
    track: str | Path | None = None,
    experiment: str = "dlnb-retrain",
) -> Decision:
    """One step of the loop on the state folder; the decision is appended to decisions.jsonl and,
    with `track`, logged as one MLflow run. The defaults suit a dlnb tabular model.

    Args:
        state_dir: the folder `init_state` made.
        live: the live window's rows, compared with the reference window.
        labelled: recent rows with their labels: the candidate trains on some, both models are
            scored on the rest.
        train: `train(rows, current)` returns a candidate (default `train_like`).
        evaluate: `evaluate(model, rows)` scores a model (default `score_model` on the
            policy's metric).
        load: `load(folder)` reads a version (default `load_tabular`).
        save: `save(model, folder)` writes a version (default `model.save(folder)`).
        track: an MLflow root: log the decision as one run.
        experiment: the MLflow experiment of that run.
    """
    state_dir = Path(state_dir)
    state = _read_state(state_dir)
    policy, target = RetrainPolicy.from_dict(state["policy"]), state["target"]
    registry = ModelRegistry(state_dir / "registry")
    before, step = registry.current(), int(state["step"]) + 1
    report = _drift(state, pd.read_csv(state_dir / REFERENCE), live, policy)
    start = time.perf_counter()
    drifted = report.feature[report.alert].tolist()
    decision = Decision(
        step, "no_alert", "", bool(drifted), drifted, float(report.psi.max()), before, before
    )
    if target not in labelled.columns:
        raise ValueError(f"The labelled rows lack the target column {target!r}.")
    labelled = labelled[labelled[target].notna()]
    if not drifted:
        decision.reason = f"no feature drifted (largest PSI {decision.max_psi:.3f})"
    elif (why := _skip_reason(state, policy, step, len(labelled))) is not None:
        decision.action, decision.reason = "skipped", why
    else:
        trained_on = _compare(
            decision, registry, labelled, policy, target, train, evaluate, load, save
        )
        state["last_retrain_step"] = step
        if decision.action == "promoted":  # the new model is watched against what it trained on
            _write_reference(state_dir, trained_on[state["features"]])
    if drifted:
        decision.seconds = time.perf_counter() - start
    decision.decided_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if track is not None:
        decision.run_id = _log(decision, policy, track, experiment)
    with open(state_dir / DECISIONS, "a") as f:
        f.write(json.dumps(decision.to_json()) + "\n")
    write_json(state_dir / STATE, {**state, "step": step, "last_decision": decision.to_json()})
    return decision


def _compare(
    decision: Decision,
    registry: ModelRegistry,
    labelled: pd.DataFrame,
    policy: RetrainPolicy,
    target: str,
    train: Train | None,
    evaluate: Callable[[Any, pd.DataFrame], float] | None,
    load: Callable[[Path], Any] | None,
    save: Callable[[Any, Path], Any] | None,
) -> pd.DataFrame:
    """Train the candidate, score both on the held-out recent rows, promote or keep; returns the
    rows the candidate trained on."""
    rows = labelled.sample(frac=1.0, random_state=policy.seed + decision.step)
    n_holdout = max(1, round(policy.holdout_fraction * len(rows)))
    holdout, recent = rows.iloc[:n_holdout], rows.iloc[n_holdout:]
    current = (load or load_tabular)(registry.path(decision.version_before))
    candidate = (train or (lambda r, c: train_like(r, c, target, policy.seed)))(recent, current)
    score = evaluate or (lambda m, r: score_model(m, r, target, policy.metric))
    decision.current_score, decision.candidate_score = (
        score(current, holdout),
        score(candidate, holdout),
    )
    sign = 1.0 if policy.higher_is_better else -1.0
    decision.gain = sign * (decision.candidate_score - decision.current_score)
    decision.n_train, decision.n_holdout = len(recent), n_holdout
    versus = (
        f"candidate {policy.metric} {decision.candidate_score:.4f} vs current "
        f"{decision.current_score:.4f} on {n_holdout} held-out recent rows: "
        f"gain {decision.gain:+.4f}"
    )
    if decision.gain >= policy.min_gain:
        version = registry.add(lambda folder: (save or _save)(candidate, folder))
        registry.promote(version)
        decision.action, decision.version_after = "promoted", version
        decision.reason = f"{versus} >= {policy.min_gain}"
    else:
        decision.action, decision.reason = "kept", f"{versus} < {policy.min_gain}"
    return recent


def _log(decision: Decision, policy: RetrainPolicy, root: str | Path, experiment: str) -> str:
    """One MLflow run for the decision: the policy as params, the numbers as metrics."""
    params = {k: v for k, v in asdict(policy).items() if k != "thresholds"}
    params |= {f"drift_{k}": v for k, v in asdict(policy.thresholds).items()}
    tags = {
        "action": decision.action,
        "reason": decision.reason,
        "drifted": ", ".join(decision.drifted),
    }
    tags |= {"version_before": decision.version_before, "version_after": decision.version_after}
    name = f"retrain step {decision.step}"
    with start_run(name, experiment=experiment, root=root, params=params, tags=tags) as run:
        numbers = {k: getattr(decision, k) for k in ("max_psi", "current_score", "candidate_score")}
        numbers |= {"gain": decision.gain, "seconds_to_decision": decision.seconds}
        numbers |= {
            "alert": float(decision.alert),
            "promoted": float(decision.action == "promoted"),
        }
        log_metrics({k: v for k, v in numbers.items() if not math.isnan(v)})
        return run.info.run_id


def decisions_table(state_dir: str | Path) -> pd.DataFrame:
    """Every decision recorded in `state_dir`, one row per step."""
    path = Path(state_dir) / DECISIONS
    lines = path.read_text().splitlines() if path.is_file() else []
    table = pd.DataFrame(
        [json.loads(line) for line in lines], columns=list(Decision.__dataclass_fields__)
    )
    scores = ["max_psi", "current_score", "candidate_score", "gain", "seconds"]
    return table.astype(dict.fromkeys(scores, float))


def replay(
    state_dir: str | Path, windows: Iterable[pd.DataFrame], **step_options: Any
) -> pd.DataFrame:
    """Run `retrain_step` on each labelled window in turn (a backtest of the policy on history,
    each window both watched and trained on); the decisions as a table."""
    return pd.DataFrame(
        [asdict(retrain_step(state_dir, w, w, **step_options)) for w in windows],
        columns=list(Decision.__dataclass_fields__),
    )
