import math

import matplotlib.pyplot as plt
import pytest

from dlnb.train.history import History

RECORDS = [
    {
        "epoch": 1,
        "train_loss": 1.0,
        "train_accuracy": 0.6,
        "valid_loss": 0.9,
        "valid_accuracy": 0.7,
    },
    {
        "epoch": 2,
        "train_loss": 0.5,
        "train_accuracy": 0.8,
        "valid_loss": 0.7,
        "valid_accuracy": 0.8,
    },
    {
        "epoch": 3,
        "train_loss": 0.3,
        "train_accuracy": 0.9,
        "valid_loss": 0.8,
        "valid_accuracy": 0.75,
    },
]


def history() -> History:
    return History([dict(r) for r in RECORDS])


def test_columns_last_and_best():
    h = history()
    assert len(h) == 3
    assert h["valid_loss"] == [0.9, 0.7, 0.8]
    assert h.last("valid_accuracy") == 0.75
    assert h.best("valid_accuracy") == 0.8
    assert h.best("valid_loss", mode="min") == 0.7
    assert h.keys() == set(RECORDS[0])


def test_missing_values_are_nan_and_skipped_by_best():
    h = History(
        [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0, "valid_loss": 3.0}]
    )
    assert math.isnan(h["valid_loss"][0])
    assert h.best("valid_loss", mode="min") == 3.0


def test_empty_and_unknown_keys_are_clear_errors():
    with pytest.raises(ValueError, match="history is empty"):
        History().last("train_loss")
    with pytest.raises(ValueError, match="No epoch recorded 'valid_rmse'; recorded keys:"):
        history().best("valid_rmse")


def test_to_frame_is_indexed_by_epoch():
    frame = history().to_frame()
    assert list(frame.index) == [1, 2, 3] and frame.index.name == "epoch"
    assert frame.loc[2, "valid_loss"] == 0.7
    assert History().to_frame().empty


def test_plot_returns_figure_and_axes_for_loss_and_accuracy():
    fig, axes = history().plot(title="run")
    assert len(axes) == 2 and all(ax.figure is fig for ax in axes)
    loss_ax, acc_ax = axes
    assert loss_ax.get_title() == "run" and acc_ax.get_ylabel() == "accuracy"
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [[1.0, 0.5, 0.3], [0.9, 0.7, 0.8]]
    assert [line.get_label() for line in acc_ax.lines] == ["train", "valid"]


def test_plot_draws_on_a_given_axis():
    fig, ax = plt.subplots()
    fig2, ax2 = history().plot(ax=ax)
    assert fig2 is fig and ax2 is ax and len(ax.lines) == 2


def test_plot_of_a_regression_shows_rmse_and_of_losses_only_one_panel():
    h = History(
        [
            {"epoch": 1, "train_loss": 4.0, "valid_loss": 5.0, "valid_rmse": 2.2},
            {"epoch": 2, "train_loss": 1.0, "valid_loss": 2.0, "valid_rmse": 1.4},
        ]
    )
    _, axes = h.plot()
    assert axes[1].get_ylabel() == "rmse" and len(axes[1].lines) == 1
    _, ax = History([{"epoch": 1, "train_loss": 1.0}]).plot()
    assert ax.get_ylabel() == "loss" and len(ax.lines) == 1


def test_plot_after_one_epoch_spans_the_whole_run_with_integer_ticks():
    # Issue 16 item 3: the live plot began as a lone point on a 0.96-1.04 axis with ticks 1.25, 1.5.
    _, axes = History([{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5}]).plot(epochs=6)
    for ax in axes:
        lo, hi = ax.get_xlim()
        assert lo < 1 and hi > 6 and hi - lo < 6
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks)
