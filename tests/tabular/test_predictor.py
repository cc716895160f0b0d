"""Raw CSV -> trained model -> saved -> loaded -> labels for new rows, and its clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dlnb.tabular.predictor import fit_table, load_tabular
from dlnb.tabular.reading import from_csv
from dlnb.train.config import TrainConfig


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    city = rng.choice(["north", "south"], n)
    spam = (x + (city == "north") > 0.8).astype(int)
    return pd.DataFrame({"x": x, "city": city, "label": np.where(spam, "spam", "ham")})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    _frame(400, 0).to_csv(folder / "mail.csv", index=False)
    table = from_csv(folder / "mail.csv", target="label", positive="spam")
    config = TrainConfig(epochs=15, lr=3e-3, class_weight="balanced", progress=False)
    model = fit_table(table, "mlp", params={"width": 32}, config=config, target="label")
    return model, model.save(folder / "model")


def test_raw_csv_to_saved_model_to_predictions_on_new_rows(trained):
    model, saved = trained
    assert model.report is not None and model.report.summary["accuracy"] > 0.85  # learned
    assert {"roc_auc", "pr_auc", "macro_f1"} <= set(model.report.summary)
    new = _frame(200, 1)
    loaded = load_tabular(saved)
    out = loaded.predict(new)  # the target column of raw rows is ignored
    assert list(out.columns) == ["label", "p(ham)", "p(spam)"]
    assert np.allclose(out[["p(ham)", "p(spam)"]].sum(axis=1), 1, atol=1e-5)
    assert (out["label"] == new["label"]).mean() > 0.85
    assert np.allclose(loaded.outputs(new), model.outputs(new), atol=1e-6)
    one = loaded.predict(new.iloc[3])  # a single row, as df.iloc[i] gives it
    assert one["label"].iloc[0] == out["label"].iloc[3] and one.index[0] == new.index[3]


def test_loading_checks_the_hash_and_the_kind(trained, tmp_path):
    _, saved = trained
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    (tmp_path / "dlnb.json").write_text((saved / "dlnb.json").read_text())
    with pytest.raises(ValueError, match="sha256"):
        load_tabular(tmp_path)
    meta = json.loads((saved / "dlnb.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(weights.read_bytes())
    (tmp_path / "dlnb.json").write_text(
        json.dumps({**meta, "params": {**meta["params"], "width": 64}})
    )
    with pytest.raises(ValueError, match="other shapes"):
        load_tabular(tmp_path)
    with pytest.raises(FileNotFoundError, match="no saved dlnb model"):
        load_tabular(tmp_path / "nothing")


def test_bad_inputs_name_the_right_call(trained):
    model, _ = trained
    with pytest.raises(TypeError, match="DataFrame of raw rows"):
        model.predict(np.zeros((2, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        model.predict(pd.DataFrame({"x": [0.1]}))
    with pytest.raises(TypeError, match="from_csv"):
        fit_table(_frame(50, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="xgboost"):
        fit_table(from_csv(_frame(50, 0), "label"), "xgboost")


def test_fit_table_trains_on_one_thread_by_default(monkeypatch):
    import torch

    from dlnb.train import loop

    seen, real_fit = [], loop.fit
    monkeypatch.setattr(
        loop, "fit", lambda *a, **k: seen.append(torch.get_num_threads()) or real_fit(*a, **k)
    )
    table = from_csv(_frame(80, 0), "label")
    fit_table(table, config=TrainConfig(epochs=1, progress=False), params={"width": 8})
    assert seen == [1]


def test_the_saved_model_card_holds_the_fit_results_and_pins_the_files(trained):
    from dlnb.lifecycle import inspect_model
    from dlnb.train.card import ModelCard

    model, saved = trained
    card = ModelCard.read(saved)
    rows = {m["metric"]: m for m in card.metrics}
    assert rows["accuracy"]["value"] == pytest.approx(model.report.summary["accuracy"])
    test_set = rows["accuracy"]["test_set"]
    assert test_set["size"] == int(model.report.per_class["support"].sum())  # the test rows
    assert len(test_set["fingerprint"]) == 16 and "mail" in card.name
    assert set(card.data["fingerprint"]) == {"train", "valid"} and "ham, spam" in card.description
    assert inspect_model(saved).verified
    given = {"intended_use": "Sorting my own mail.", "data": {"licence": "mine"}}
    custom = ModelCard.read(model.save(saved.parent / "custom", card=given))
    assert custom.intended_use == "Sorting my own mail." and custom.metrics == card.metrics
    assert custom.data == {**card.data, "licence": "mine"}  # merged with what the fit knows


def test_fit_table_passes_callbacks_to_fit_after_early_stopping():
    from dlnb.train.callbacks import Callback

    class Epochs(Callback):
        def __init__(self):
            self.seen: list[int] = []

        def on_epoch_end(self, state) -> None:
            self.seen.append(state.epoch)

    counter = Epochs()
    table = from_csv(_frame(80, 0), "label")
    config = TrainConfig(epochs=3, progress=False)
    fit_table(table, config=config, params={"width": 8}, patience=10, callbacks=[counter])
    assert len(counter.seen) == 3


def _trained_with(monkeypatch, table, **options) -> tuple[TrainConfig, object]:
    """The TrainConfig `fit_table` hands to `fit` (the fit itself skipped), and the model."""
    from dlnb.train import loop

    seen: list[TrainConfig] = []
    monkeypatch.setattr(loop, "fit", lambda net, loaders, config, *a, **k: seen.append(config))
    model = fit_table(table, **options)
    assert len(seen) == 1
    return seen[0], model


def test_fit_table_keeps_every_training_setting_the_caller_made(monkeypatch):
    table = from_csv(_frame(80, 0), "label")
    mine = TrainConfig(
        epochs=2, lr=3e-3, weight_decay=0.02, seed=7, class_weight="balanced", progress=False
    )
    used, model = _trained_with(
        monkeypatch, table, model="ft_transformer", config=mine, seed=1, params={"n_blocks": 1}
    )
    assert (used.lr, used.weight_decay, used.seed) == (3e-3, 0.02, 7)
    assert (used.epochs, used.class_weight, used.progress) == (2, "balanced", False)
    assert mine == TrainConfig(
        epochs=2, lr=3e-3, weight_decay=0.02, seed=7, class_weight="balanced", progress=False
    ), "the caller's config object is left as it was"
    assert (model.params["lr"], model.params["weight_decay"]) == (3e-3, 0.02)  # what trained


def test_fit_table_fills_only_unset_settings_with_the_model_defaults(monkeypatch):
    from dlnb.tabular.models import DEFAULTS

    table = from_csv(_frame(80, 0), "label")
    own = DEFAULTS["ft_transformer"]
    assert (own["lr"], own["weight_decay"]) != (TrainConfig().lr, TrainConfig().weight_decay)
    config = TrainConfig(epochs=2, class_weight="balanced", progress=False)
    used, _ = _trained_with(
        monkeypatch, table, model="ft_transformer", config=config, seed=4, params={"n_blocks": 1}
    )
    assert (used.lr, used.weight_decay) == (own["lr"], own["weight_decay"])
    assert (used.seed, used.loss, used.epochs, used.class_weight) == (
        4,
        "cross_entropy",
        2,
        "balanced",
    )
    used, _ = _trained_with(monkeypatch, table, config=config, params={"lr": 5e-4, "width": 8})
    assert used.lr == 5e-4 and used.weight_decay == DEFAULTS["mlp"]["weight_decay"]
    used, _ = _trained_with(monkeypatch, table, params={"width": 8})  # no config at all
    assert (used.epochs, used.progress, used.lr) == (50, False, DEFAULTS["mlp"]["lr"])


def test_fit_table_trains_regression_with_mse_and_refuses_conflicting_settings(monkeypatch):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=80), "y": rng.normal(size=80)})
    used, model = _trained_with(
        monkeypatch, from_csv(frame, "y"), config=TrainConfig(epochs=1), params={"width": 8}
    )
    assert model.task == "regression" and used.loss == "mse"
    table = from_csv(_frame(80, 0), "label")
    with pytest.raises(ValueError, match="binary table trains with loss='cross_entropy'"):
        fit_table(table, config=TrainConfig(loss="mse"), params={"width": 8})
    with pytest.raises(ValueError, match="lr is set twice"):
        fit_table(table, config=TrainConfig(lr=3e-3), params={"lr": 1e-4, "width": 8})
