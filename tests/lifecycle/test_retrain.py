"""The retraining loop: it retrains only on an alert with enough labelled rows, promotes only a
candidate that wins on held-out recent rows, records every decision and resumes from disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dlnb.__main__ import main
from dlnb.lifecycle.registry import ModelRegistry, RegistryError
from dlnb.lifecycle.retrain import (
    RetrainPolicy,
    decisions_table,
    init_state,
    replay,
    retrain_step,
    score_model,
)
from dlnb.train.saving import load_model_files, save_model

POLICY = RetrainPolicy(metric="accuracy", min_gain=0.05, min_labelled=100)


class Cut(nn.Module):
    """A one-feature classifier: class 1 when x > t (the cheapest model that can be saved)."""

    task, classes = "binary", ("0", "1")

    def __init__(self, t: float):
        super().__init__()
        self.register_buffer("t", torch.tensor(float(t)))

    def outputs(self, rows: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-20 * (rows["x"].to_numpy() - float(self.t))))
        return np.c_[1 - p, p]

    def save(self, folder: Path) -> None:
        save_model(folder, self, {"kind": "test.cut"})


def load_cut(folder: Path) -> Cut:
    state, _ = load_model_files(folder)
    return Cut(float(state["t"]))


def fit_cut(rows: pd.DataFrame, current: Cut) -> Cut:
    """Train: the lowest x of class 1 (right for the tables below)."""
    return Cut(rows.x[rows.y == 1].min() - 1e-6)


def rows(n: int, shift: float, seed: int) -> pd.DataFrame:
    """x ~ N(shift, 1) and the concept y = x > shift: a shift moves both inputs and labels."""
    x = np.random.default_rng(seed).normal(shift, 1.0, n)
    return pd.DataFrame({"x": x, "y": (x > shift).astype(int)})


def never(rows: pd.DataFrame, current: Cut) -> Cut:
    raise AssertionError("retrained although it should not")


@pytest.fixture
def state(tmp_path) -> Path:
    init_state(
        tmp_path / "s", Cut(0.0), rows(500, 0.0, 0), target="y", features=["x"], policy=POLICY
    )
    return tmp_path / "s"


def step(state: Path, live: pd.DataFrame, labelled: pd.DataFrame | None = None, **kw):
    kw = {"train": fit_cut, "load": load_cut, **kw}
    return retrain_step(state, live, live if labelled is None else labelled, **kw)


def test_no_alert_means_no_retraining(state):
    decision = step(state, rows(400, 0.0, 1), train=never)
    assert decision.action == "no_alert" and not decision.alert
    assert decision.reason.startswith("no feature drifted") and decision.max_psi < 0.2
    assert ModelRegistry(state / "registry").current() == "v0001"


def test_an_alert_and_a_better_candidate_promote_it_and_record_why(state, tmp_path):
    decision = step(state, rows(400, 2.0, 1), track=tmp_path / "mlflow")
    assert decision.alert and decision.drifted == ["x"] and decision.action == "promoted"
    assert decision.candidate_score > 0.95 > 0.7 > decision.current_score  # cut 0 on N(2, 1)
    assert decision.gain == pytest.approx(decision.candidate_score - decision.current_score)
    assert (decision.n_holdout, decision.n_train) == (120, 280)  # 30% held out, never trained on
    assert decision.version_after == ModelRegistry(state / "registry").current() == "v0002"
    assert float(load_cut(state / "registry" / "v0002").t) > 1.0
    assert pd.read_csv(state / "reference.csv").x.mean() > 1.5  # now watched against recent rows
    table = decisions_table(state)
    assert table.action.tolist() == ["promoted"] and table.seconds[0] > 0
    assert json.loads((state / "state.json").read_text())["last_decision"]["action"] == "promoted"
    from dlnb.train.tracking import runs_table

    runs = runs_table("dlnb-retrain", root=tmp_path / "mlflow")
    assert runs["run"].tolist() == ["retrain step 1"] and runs["tags.action"][0] == "promoted"
    assert runs["metrics.gain"][0] == pytest.approx(decision.gain)
    assert runs["run_id"][0] == decision.run_id


def test_a_worse_candidate_is_kept_out_and_recorded(state):
    decision = step(state, rows(400, 2.0, 1), train=lambda r, c: Cut(-10.0))
    assert decision.action == "kept" and decision.gain < POLICY.min_gain
    assert "< 0.05" in decision.reason and decision.version_after == "v0001"
    assert ModelRegistry(state / "registry").current() == "v0001"
    assert ModelRegistry(state / "registry").versions() == ["v0001"]
    assert decisions_table(state).action.tolist() == ["kept"]


def test_too_few_labelled_rows_is_a_clear_skip(state):
    decision = step(state, rows(400, 2.0, 1), rows(50, 2.0, 2), train=never)
    assert decision.action == "skipped"
    assert decision.reason == "too few labelled rows: 50, the policy needs 100"
    unlabelled = rows(400, 2.0, 2).assign(y=np.nan)  # rows without their label do not count
    assert "too few labelled rows: 0" in step(state, rows(400, 2.0, 1), unlabelled).reason


def test_the_state_survives_between_calls_and_the_cool_down_holds(tmp_path):
    policy = RetrainPolicy(metric="accuracy", min_gain=0.05, min_labelled=100, cooldown_steps=1)
    init_state(tmp_path, Cut(0.0), rows(500, 0.0, 0), target="y", features=["x"], policy=policy)
    assert step(tmp_path, rows(400, 2.0, 1)).action == "promoted"
    second = step(tmp_path, rows(400, 5.0, 2), train=never)  # a fresh call, reading only the disk
    assert second.step == 2 and second.version_before == "v0002" and second.action == "skipped"
    assert second.reason.startswith("cool-down: retrained at step 1")
    third = step(tmp_path, rows(400, 5.0, 3))
    assert third.action == "promoted" and third.version_after == "v0003"
    assert decisions_table(tmp_path).step.tolist() == [1, 2, 3]
    with pytest.raises(FileExistsError):
        init_state(tmp_path, Cut(0.0), rows(10, 0.0, 0), target="y", features=["x"])


def test_replay_backtests_the_policy_window_by_window(state):
    windows = [rows(300, 0.0, 1), rows(300, 2.0, 2), rows(300, 2.0, 3)]
    table = replay(state, windows, train=fit_cut, load=load_cut)
    assert table.action.tolist() == ["no_alert", "promoted", "no_alert"]
    assert table.step.tolist() == [1, 2, 3] and table.version_after.iloc[-1] == "v0002"
    pd.testing.assert_frame_equal(table, decisions_table(state))


def test_a_corrupt_or_dangling_pointer_is_a_clear_error(state):
    pointer = state / "registry" / "current"
    pointer.write_text("{not json")
    with pytest.raises(RegistryError, match=r"pointer .*current is corrupt.*v0001"):
        step(state, rows(400, 2.0, 1))
    pointer.write_text(json.dumps({"version": "v0042"}))
    with pytest.raises(RegistryError, match="names 'v0042', which is not a saved version"):
        step(state, rows(400, 2.0, 1))
    assert decisions_table(state).empty  # nothing was decided on a registry it cannot trust


def test_missing_state_and_features_are_named(tmp_path, state):
    with pytest.raises(FileNotFoundError, match="init_state"):
        retrain_step(tmp_path / "nowhere", rows(10, 0, 0), rows(10, 0, 0))
    with pytest.raises(ValueError, match=r"lack the monitored features \['x'\]"):
        step(state, pd.DataFrame({"z": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="lack the target column 'y'"):
        step(state, rows(400, 2.0, 1), rows(400, 2.0, 1).drop(columns="y"))


def test_the_policy_round_trips_and_scores_follow_the_metric():
    policy = RetrainPolicy(min_gain=0.2, cooldown_steps=3)
    from dataclasses import asdict

    assert RetrainPolicy.from_dict(json.loads(json.dumps(asdict(policy)))) == policy
    live = rows(200, 0.0, 4)
    assert score_model(Cut(0.0), live, "y", "accuracy") > 0.99
    assert score_model(Cut(-10.0), live, "y", "accuracy") == pytest.approx(live.y.mean())
    with pytest.raises(KeyError, match="No metric 'r2'"):
        score_model(Cut(0.0), live, "y", "r2")


def test_the_cli_runs_one_step_with_a_tabular_model(tmp_path, capsys):
    from dlnb.tabular import fit_table
    from dlnb.tabular.tables import table_from_frame
    from dlnb.train.config import TrainConfig

    old = rows(300, 0.0, 0).assign(z=lambda d: np.random.default_rng(0).normal(size=len(d)))
    config = TrainConfig(epochs=3, progress=False)
    model = fit_table(table_from_frame(old, "y"), params={"width": 8}, config=config, target="y")
    init_state(tmp_path / "s", model, old, target="y", features=["x", "z"])
    old.to_csv(tmp_path / "same.csv", index=False)
    new = rows(300, 2.0, 1).assign(z=0.0, year=2000)  # a column the model does not take
    new.to_csv(tmp_path / "live.csv", index=False)
    state = ["retrain", "--state", str(tmp_path / "s")]
    assert main([*state, "--live", str(tmp_path / "same.csv"), "--labelled", "no.csv"]) == 1
    assert "no.csv" in capsys.readouterr().err
    same = tmp_path / "same.csv"
    assert main([*state, "--live", str(same), "--labelled", str(same)]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and json.loads(out)["current_score"] is None  # strict JSON
    args = [*state, "--live", str(tmp_path / "live.csv")]
    assert main([*args, "--labelled", str(tmp_path / "live.csv")]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["step"] == 2 and decision["alert"]
    assert decision["action"] in ("promoted", "kept")
    assert 0.0 <= decision["current_score"] <= 1.0 and decision["n_holdout"] == 90
    (tmp_path / "s" / "registry" / "current").write_text("")
    assert main([*args, "--labelled", str(tmp_path / "live.csv")]) == 1
    assert "corrupt" in capsys.readouterr().err
