"""Tracking (dlnb.train.tracking) to a local MLflow store: what a run logs comes back from the
store, and a store that cannot be written is named with its fix."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace

import mlflow
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlnb.train import tracking
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit
from dlnb.train.saving import save_model
from dlnb.train.tracking import (
    TrackingCallback,
    TrackingError,
    _code_version,
    _environment,
    log_comparison,
    log_metrics,
    log_model,
    runs_table,
    start_run,
    tracking_uri,
)

CPU = {"device": "cpu", "progress": False}


@pytest.fixture(autouse=True)
def no_run_left_active():
    """Each test starts and ends without an active MLflow run (and with the default store)."""
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One migrated MLflow database (creating one takes seconds), copied into each test's store."""
    root = tmp_path_factory.mktemp("template")
    with start_run("setup", experiment="template", root=root):
        pass
    mlflow.set_tracking_uri(None)
    return root / "mlflow.db"


@pytest.fixture
def store(tmp_path, template):
    """A store folder holding a copy of the migrated database."""
    root = tmp_path / "store"
    root.mkdir()
    shutil.copy(template, root / "mlflow.db")
    return root


def loaders(n: int = 64) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=16)
    return SimpleNamespace(train=train, valid=DataLoader(TensorDataset(x, y), batch_size=32))


def test_tracking_uri_defaults_to_dlnb_mlflow_then_runs_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("DLNB_MLFLOW", str(tmp_path / "store"))
    assert tracking_uri() == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert (tmp_path / "store").is_dir()
    monkeypatch.delenv("DLNB_MLFLOW")
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path / 'runs' / 'mlflow' / 'mlflow.db'}"
    assert tracking_uri("rel") == f"sqlite:///{tmp_path / 'rel' / 'mlflow.db'}", "made absolute"


def test_a_run_logs_params_metrics_tags_and_the_model_and_runs_table_reads_them(store, tmp_path):
    model_dir = save_model(tmp_path / "saved", nn.Linear(4, 2), {"kind": "linear"})
    with start_run(
        "first",
        experiment="exp",
        root=store,
        params={"lr": 0.01, "layers": [8, 8]},
        tags={"team": "ml"},
        data_fingerprint="abc123",
    ) as run:
        log_metrics({"accuracy": 0.9}, step=1)
        log_metrics({"accuracy": 0.95}, step=2)
        log_model(model_dir)
    with start_run("second", experiment="exp", root=store):
        pass
    table = runs_table("exp", root=store)
    assert list(table["run"]) == ["first", "second"] and set(table["status"]) == {"FINISHED"}
    first = table.iloc[0]
    assert (first["params.lr"], first["params.layers"]) == ("0.01", "[8, 8]")
    assert first["metrics.accuracy"] == 0.95, "the last value of a metric"
    assert first["params.data_fingerprint"] == first["tags.data_fingerprint"] == "abc123"
    assert first["tags.team"] == "ml"
    for tag in ("git_commit", "git_dirty", "python", "torch", "dlnb", "platform", "device"):
        assert first[f"tags.{tag}"], tag
    history = mlflow.MlflowClient(tracking_uri(store)).get_metric_history(
        run.info.run_id, "accuracy"
    )
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.95)]
    artifacts = store / "artifacts" / "exp" / run.info.run_id / "artifacts" / "model"
    assert sorted(p.name for p in artifacts.iterdir()) == ["dlnb.json", "model.safetensors"]
    assert runs_table("no-such-experiment", root=store).empty


def test_an_error_inside_a_run_marks_it_failed_and_is_re_raised(store):
    with pytest.raises(ZeroDivisionError), start_run("broken", root=store):
        1 / 0  # noqa: B018
    assert mlflow.active_run() is None
    assert list(runs_table(root=store)["status"]) == ["FAILED"]


def test_log_metrics_skips_non_finite_and_non_numeric_values_with_a_warning(store):
    with start_run("r", root=store):
        with pytest.warns(UserWarning, match=r"loss=nan.*name='cnn'"):
            log_metrics({"loss": float("nan"), "name": "cnn", "acc": 0.5, "n": 3})
    row = runs_table(root=store).iloc[0]
    assert (row["metrics.acc"], row["metrics.n"]) == (0.5, 3.0)
    assert "metrics.loss" not in row and "metrics.name" not in row


def test_logging_outside_a_run_says_how_to_start_one(tmp_path):
    with pytest.raises(TrackingError, match="start_run"):
        log_metrics({"a": 1.0})
    with pytest.raises(TrackingError, match="start_run"):
        log_model(tmp_path)


def test_log_model_refuses_a_folder_that_is_not_a_saved_model(store, tmp_path):
    with start_run("r", root=store), pytest.raises(FileNotFoundError):
        log_model(tmp_path)


def test_fit_with_the_callback_logs_one_value_per_epoch_in_its_own_run(store):
    config = TrainConfig(epochs=3, lr=0.05, **CPU)
    cb = TrackingCallback("cnn", experiment="fits", root=store, data_fingerprint="fp1")
    history = fit(nn.Linear(4, 2), loaders(), config, [cb])
    client = mlflow.MlflowClient(tracking_uri(store))
    for name in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "lr"):
        values = client.get_metric_history(cb.run_id, name)
        assert [m.step for m in values] == [1, 2, 3], name
        assert [m.value for m in values] == [r[name] for r in history.records], name
    assert len(client.get_metric_history(cb.run_id, "epoch_seconds")) == 3
    row = runs_table("fits", root=store).iloc[0]
    assert (row["run"], row["status"], row["params.epochs"]) == ("cnn", "FINISHED", "3")
    assert (row["params.lr"], row["tags.data_fingerprint"], row["tags.device"]) == (
        "0.05",
        "fp1",
        "cpu",
    )
    assert mlflow.active_run() is None


def test_the_callback_logs_into_an_active_run_and_can_log_the_weights(store):
    with start_run("outer", root=store, params={"lr": "chosen-by-me"}) as run:
        cb = TrackingCallback(log_weights=True)
        fit(nn.Linear(4, 2), loaders(), TrainConfig(epochs=2, **CPU), [cb])
    assert cb.run_id == run.info.run_id
    client = mlflow.MlflowClient(tracking_uri(store))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_loss")] == [1, 2]
    row = runs_table(root=store).iloc[0]
    assert row["run"] == "outer" and len(runs_table(root=store)) == 1
    assert row["params.lr"] == "chosen-by-me", "a param the user logged is kept"
    assert row["params.epochs"] == "2"
    model = store / "artifacts" / "dlnb" / run.info.run_id / "artifacts" / "model"
    assert json.loads((model / "dlnb.json").read_text())["config"]["epochs"] == 2


def test_log_comparison_nests_one_run_per_row_under_a_parent(store):
    rows = [
        {
            "dataset": "t",
            "task": "binary",
            "model": m,
            "seed": 0,
            "n_train": 100,
            "accuracy": acc,
            "trees": trees,
            "hyperparameters": json.dumps(hyper),
        }
        for m, acc, trees, hyper in (("xgboost", 0.9, 40, {"max_depth": 3}), ("mlp", 0.8, None, {}))
    ]
    parent = log_comparison(rows, "cmp", root=store, seeds=[0], trials=2)
    table = runs_table("cmp", root=store).set_index("run")
    assert list(table.index) == ["compare t", "xgboost seed=0 n=100", "mlp seed=0 n=100"]
    assert (table["tags.mlflow.parentRunId"].iloc[1:] == parent).all()
    assert table.loc["compare t", "params.trials"] == "2"
    assert table.loc["xgboost seed=0 n=100", "params.max_depth"] == "3"
    assert table.loc["mlp seed=0 n=100", "metrics.accuracy"] == 0.8
    assert table.loc["xgboost seed=0 n=100", "metrics.trees"] == 40


def test_compare_with_track_logs_each_model_and_seed_with_its_scores(store, monkeypatch):
    from dlnb.tabular.comparison import Budget, compare
    from dlnb.tabular.tables import synthetic_table

    monkeypatch.setenv("DLNB_MLFLOW", str(store))
    results = compare(
        synthetic_table(300, cardinality=4),
        models=("xgboost",),
        seeds=(0, 1),
        budget=Budget(trials=1, max_rounds=10),
        progress=False,
        track="tabular",
    )
    table = runs_table("tabular")
    children = table[table["tags.mlflow.parentRunId"].notna()].set_index("run")
    expected = [
        f"{m} seed={s} n={n}" for m, s, n in results.frame[["model", "seed", "n_train"]].values
    ]
    assert list(children.index) == expected and len(expected) == 4, "majority and xgboost, 2 seeds"
    for (_, row), acc in zip(children.iterrows(), results.frame["accuracy"], strict=True):
        assert row["metrics.accuracy"] == pytest.approx(acc)
    assert children.loc[expected[-1], "params.seed"] == "1" and "xgboost" in expected[-1]
    assert table.iloc[0]["params.models"] == '["xgboost"]'


def test_a_missing_store_that_cannot_be_created_names_the_path_and_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrackingError, match=r"a-file/store.*cannot be created.*DLNB_MLFLOW"):
        tracking_uri(blocker / "store")


def test_a_read_only_store_names_the_path_and_the_fix(tmp_path):
    store = tmp_path / "ro"
    store.mkdir()
    store.chmod(0o500)
    try:
        if os.access(store, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        with pytest.raises(TrackingError, match=r"ro/mlflow.db is read-only.*root=\.\.\."):
            tracking_uri(store)
        with pytest.raises(TrackingError, match="read-only"), start_run("r", root=store):
            pass
    finally:
        store.chmod(0o700)


def test_a_store_file_without_write_permission_is_read_only(tmp_path, monkeypatch):
    tracking_uri(tmp_path)  # a writable store
    (tmp_path / "mlflow.db").touch()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and p != tmp_path / "mlflow.db")
    with pytest.raises(TrackingError, match=r"mlflow.db is read-only; set DLNB_MLFLOW"):
        tracking_uri(tmp_path)


def test_code_version_is_the_commit_in_git_and_unknown_outside(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    monkeypatch.chdir(repo)
    assert _code_version()["git_commit"] == head.strip()
    assert _code_version()["git_dirty"] == "false"
    (repo / "f.txt").write_text("2")
    assert _code_version()["git_dirty"] == "true"
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert _code_version() == {"git_commit": "unknown", "git_dirty": "unknown"}
    monkeypatch.setenv("PATH", "")  # no git at all: still no failure
    assert _code_version()["git_commit"] == "unknown"


def test_environment_names_versions_and_device(monkeypatch):
    found = _environment()
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert found["torch"] == torch.__version__ and found["device"] in ("cpu", "cuda", "mps")
    assert found["dlnb"] == version("dlnb")  # the installed package's metadata

    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(tracking, "version", not_installed)
    assert _environment()["dlnb"] == "unknown"


def test_a_new_store_is_created_quietly(tmp_path, capfd):
    with start_run("quiet", root=tmp_path / "fresh"):
        log_metrics({"a": 1.0})
    captured = capfd.readouterr()
    assert "INFO" not in captured.err + captured.out, "MLflow's and alembic's INFO lines show"
    assert "Creating initial MLflow database tables" not in captured.err
    for name in tracking.QUIET_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, "warnings stay"


def test_users_call_tracking_from_the_lifecycle_namespace():
    from dlnb import lifecycle

    for name in tracking.__all__:
        assert name in lifecycle.__all__ and getattr(lifecycle, name) is getattr(tracking, name)
