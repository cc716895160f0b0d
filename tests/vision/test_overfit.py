"""dlnb.vision.overfit: the split, the clean train accuracy, the multi-seed runs and their gains."""

import numpy as np
import pandas as pd
import pytest
import torch

from dlnb.data.loaders import make_loaders
from dlnb.models import LeNet5
from dlnb.train.config import TrainConfig
from dlnb.train.history import History
from dlnb.train.loop import evaluate, fit
from dlnb.vision import overfit
from dlnb.vision.overfit import (
    CleanTrainAccuracy,
    Regime,
    SmallData,
    overfit_experiment,
    plot_overfit_curves,
    regularisation_gains,
    small_mnist,
)

pytestmark = pytest.mark.usefixtures("single_thread")

FAST = TrainConfig(epochs=10, lr=5e-3, scheduler="cosine", device="cpu", progress=False)


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 28x28 images of two classes: a bright square top-left (0) or bottom-right (1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.5 * torch.randn(n, 1, 28, 28, generator=g)
    x[y == 0, :, 4:12, 4:12] += 2.0
    x[y == 1, :, 16:24, 16:24] += 2.0
    return x, y


def fake_mnist(split: str = "train", subset=None, seed: int = 0):
    x, y = images(300 if split == "train" else 80, seed=1 if split == "train" else 2)
    if subset is not None:
        keep = torch.as_tensor(np.random.default_rng(seed).choice(len(y), subset, replace=False))
        return x[keep], y[keep]
    return x, y


def synthetic(n_valid: int = 40) -> SmallData:
    x, y = images(200)
    return SmallData(x, y, np.arange(n_valid, 200), (x[:n_valid], y[:n_valid]), images(60, seed=3))


def test_small_mnist_holds_out_a_seeded_validation_set(monkeypatch):
    monkeypatch.setattr(overfit, "mnist_tensors", fake_mnist)
    data = small_mnist(n_valid=50, n_test=30, seed=4)
    assert len(data.pool) == 250 and len(data.valid[1]) == 50 and len(data.test[1]) == 30
    valid_rows = np.setdiff1d(np.arange(300), data.pool)
    assert len(valid_rows) == 50  # validation and pool are disjoint and cover the training set
    torch.testing.assert_close(data.valid[0], data.x[torch.as_tensor(valid_rows)])
    np.testing.assert_array_equal(data.pool_labels, data.y[data.pool].numpy())
    again, other = small_mnist(50, 30, seed=4), small_mnist(50, 30, seed=5)
    np.testing.assert_array_equal(again.pool, data.pool)
    assert not np.array_equal(other.pool, data.pool)


def test_clean_train_accuracy_is_measured_in_eval_mode():
    x, y = images(64)
    loaders = make_loaders(x, y, valid_fraction=0.0, batch_size=16)
    clean = make_loaders(x, y, valid_fraction=0.0, batch_size=64).train
    torch.manual_seed(0)
    model = LeNet5(dropout=0.7)
    history = fit(model, loaders, FAST, [CleanTrainAccuracy(clean)])
    assert model.training  # the callback leaves the model in the mode it found it in
    assert len(history["clean_train_accuracy"]) == FAST.epochs
    assert history.last("clean_train_accuracy") == evaluate(model, clean)["accuracy"]
    # with heavy dropout the running average of fit is a different number
    assert history.last("clean_train_accuracy") == 1.0
    assert history["clean_train_accuracy"] != history["train_accuracy"]


def test_the_experiment_runs_each_regime_on_each_seed(monkeypatch):
    augmented = []
    monkeypatch.setattr(overfit, "mnist_augment", lambda: augmented.append(1) or (lambda t: t))
    regimes = {"plain": Regime(), "regularised": Regime(augment=True, dropout=0.5)}
    frame = overfit_experiment(
        regimes, [0, 1], per_class=40, data=synthetic(), config=FAST, log=None
    )
    assert frame[["method", "seed"]].values.tolist() == [
        ["plain", 0],
        ["regularised", 0],
        ["plain", 1],
        ["regularised", 1],
    ]
    assert (frame.n_train == 80).all() and len(augmented) == 2
    assert {"train_accuracy", "valid_accuracy", "test_accuracy", "history"} <= set(frame)
    assert (frame.train_accuracy == 1.0).all()  # the squares are easy to learn
    assert (frame.test_accuracy > 0.9).all()
    for history in frame.history:
        assert isinstance(history, History) and len(history) == FAST.epochs


def test_gains_are_per_seed_differences_from_the_baseline():
    frame = pd.DataFrame(
        {
            "method": ["plain", "aug", "drop", "plain", "aug", "drop"],
            "seed": [0, 0, 0, 1, 1, 1],
            "test_accuracy": [0.90, 0.95, 0.89, 0.92, 0.96, 0.93],
        }
    )
    gains = regularisation_gains(frame)
    assert list(gains.columns) == ["aug", "drop"] and list(gains.index) == [0, 1]
    np.testing.assert_allclose(gains.to_numpy(), [[0.05, -0.01], [0.04, 0.01]], atol=1e-12)
    with pytest.raises(KeyError, match="baseline 'none'"):
        regularisation_gains(frame, baseline="none")


def test_the_curves_show_one_panel_per_regime():
    history = History(
        [{"epoch": e, "clean_train_accuracy": 0.9, "valid_accuracy": 0.8} for e in (1, 2)]
    )
    frame = pd.DataFrame(
        {"method": ["plain", "aug", "plain"], "seed": [3, 3, 4], "history": [history] * 3}
    )
    fig, axs = plot_overfit_curves(frame)
    assert len(axs) == 2 and axs[1].get_title() == "aug (seed 3)"
    assert [line.get_label() for line in axs[0].get_lines()] == ["train (eval mode)", "validation"]


def test_a_run_measures_every_image_in_resident_batches(monkeypatch):
    monkeypatch.setattr(overfit, "EVAL_BATCH_SIZE", 7)  # batches that do not divide any split
    data = synthetic()
    barely = TrainConfig(epochs=1, lr=2e-3, scheduler="cosine", device="cpu", progress=False)
    run = overfit.regime_method(data, Regime(dropout=0.5), barely)
    indices = np.arange(0, 160, 2)
    result = run(indices, 0)
    assert (
        0 < result["train_accuracy"] < 1 and 0 < result["test_accuracy"] < 1
    )  # every image counts
    model, rows = result["model"], torch.as_tensor(data.pool[indices])
    train = make_loaders(data.x[rows], data.y[rows], valid_fraction=0.0, batch_size=1000).train
    test = make_loaders(*data.test, valid_fraction=0.0, batch_size=1000).train
    assert result["train_accuracy"] == evaluate(model, train)["accuracy"]
    assert result["test_accuracy"] == evaluate(model, test)["accuracy"]
    assert len(result["history"]["valid_accuracy"]) == barely.epochs


def runs(plain_test, aug_test, aug_train, valid_curve=(0.90, 0.91, 0.92, 0.93)):
    """A frame of plain and augmented runs, one per seed; the plain model's clean train accuracy
    reaches 0.99 at epoch 2, 1.0 at epoch 3, and its validation accuracy follows `valid_curve`."""
    history = History(
        [{"epoch": e + 1, "clean_train_accuracy": min(1.0, 0.95 + 0.04 * e), "valid_accuracy": v}
         for e, v in enumerate(valid_curve)]
    )  # fmt: skip
    rows = []
    for seed, (p, a, t) in enumerate(zip(plain_test, aug_test, aug_train, strict=True)):
        rows.append({"method": "plain", "seed": seed, "train_accuracy": 1.0, "test_accuracy": p,
                     "history": history})  # fmt: skip
        rows.append({"method": "augmentation", "seed": seed, "train_accuracy": t,
                     "test_accuracy": a, "history": history})  # fmt: skip
    return pd.DataFrame(rows)


PLAIN = (0.930, 0.928, 0.932)


def test_overfit_effects_pair_test_accuracy_and_the_gap_over_seeds():
    frame = runs(PLAIN, (0.960, 0.957, 0.962), (0.996, 0.995, 0.997))
    effects = overfit.overfit_effects(frame)
    gain, change, left = effects["test_gain"], effects["gap_change"], effects["gap_left"]
    assert gain.diff == pytest.approx(0.0297, abs=1e-4) and gain.verdict == "better"
    assert change.diff == pytest.approx(0.036333 - 0.07, abs=1e-5)
    assert change.verdict == "better" and not change.higher_is_better  # a smaller gap is better
    assert left.diff == pytest.approx(0.036333, abs=1e-5) and left.verdict == "better"


def test_the_overfit_summary_says_augmentation_reduces_overfitting_without_removing_it():
    text = overfit.overfit_summary(runs(PLAIN, (0.960, 0.957, 0.962), (0.996, 0.995, 0.997)), 2000)
    assert "The plain model memorises" in text and "1.000 on every seed" in text
    # anchored where train accuracy first reaches 1.000 (epoch 3), not 0.99 (epoch 2)
    assert "first reaches 1.000 at epoch 3" in text
    assert "still rises, slowly: +0.010 on average" in text and "remaining 1 epoch" in text
    assert "**Augmentation raises test accuracy** (about 59 more" in text
    assert "It narrows the gap" in text and "does not remove it" in text
    assert "fixes" not in text and "stalls" not in text


def test_the_overfit_summary_follows_a_gain_within_noise_and_a_flat_validation_curve():
    frame = runs(
        PLAIN, (0.950, 0.915, 0.925), (0.97, 0.94, 0.95), valid_curve=(0.9, 0.91, 0.92, 0.92)
    )
    text = overfit.overfit_summary(frame, 2000)
    assert "effect on test accuracy is not resolved" in text and "within noise" in text
    assert "barely moves: +0.000 on average" in text and "still rises" not in text


def test_the_overfit_summary_says_when_the_model_never_memorised():
    frame = runs(PLAIN, (0.960, 0.957, 0.962), (0.996, 0.995, 0.997))
    frame["history"] = [
        History([{"epoch": 1, "clean_train_accuracy": 0.9, "valid_accuracy": 0.8}])
    ] * 6
    assert "never reached 1.000" in overfit.overfit_summary(frame, 2000)


def test_a_gap_the_seeds_agree_on_is_said_as_one_value_not_a_zero_width_interval():
    frame = runs(PLAIN, (0.960, 0.957, 0.962), (0.997, 0.994, 0.999))  # gap 0.037 on each seed
    text = overfit.overfit_summary(frame, 2000)
    assert "its own gap is 0.037 on every seed" in text and "+0.037 to +0.037" not in text


def test_the_fit_summary_reads_the_loss_gap():
    assert "no higher than the training loss" in overfit.fit_summary(3, 0.05, 0.04, 0.98, 10_000)
    slight = overfit.fit_summary(3, 0.05, 0.06, 0.98, 10_000)
    assert slight.startswith("After 3 epochs the training loss is 0.0500")
    assert "only slightly above" in slight and "0.9800 on 10,000 digits" in slight
    assert "started to memorise" in overfit.fit_summary(3, 0.01, 0.05, 0.97, 10_000)
