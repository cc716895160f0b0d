"""Figures of a tabular comparison (dlnb.tabular.figures): one colour per model, labelled axes,
legends off the data, the regression baseline named for what it is."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dlnb.tabular import figures  # noqa: E402


def _summary() -> pd.DataFrame:
    """Summary rows of three models at two training sizes (XGBoost cheapest, MLP best)."""
    rows = []
    for model, scores, seconds in (
        ("majority", (0.5, 0.5), 0.0),
        ("xgboost", (0.80, 0.85), 1.0),
        ("mlp", (0.75, 0.88), 9.0),
    ):
        for n, score in zip((100, 1000), scores, strict=True):
            rows.append(
                {
                    "model": model,
                    "n_train": n,
                    "accuracy_mean": score,
                    "accuracy_std": 0.01,
                    "tune_seconds_mean": seconds,
                    "tune_seconds_std": 0.1,
                }
            )
    return pd.DataFrame(rows)


def test_names_and_axis_labels_say_what_they_measure():
    assert figures.model_name("majority", "regression") == "mean predictor"
    assert figures.model_name("majority", "binary") == "majority class"
    assert figures.model_name("emb_mlp") == "MLP + embeddings"
    assert figures.model_name("catboost") == "catboost"
    assert figures.axis_label("rmse", False) == "test RMSE (lower is better)"
    assert figures.axis_label("accuracy", True) == "test accuracy (higher is better)"


def test_the_learning_curve_draws_one_line_per_model_in_its_colour():
    fig, ax = plt.subplots()
    figures.draw_learning_curve(ax, _summary(), "accuracy", True, figures.model_name, "a table")
    lines = {c.get_label(): c.lines[0] for c in ax.containers}  # errorbar: (line, caps, bars)
    assert set(lines) == {"majority class", "XGBoost", "MLP (one-hot)"}
    assert lines["XGBoost"].get_color() == figures.COLORS["xgboost"]
    assert lines["majority class"].get_linestyle() == "--"
    assert ax.get_xscale() == "log" and ax.get_title() == "a table"
    assert ax.get_xlabel() == "training rows (log scale)"
    assert ax.get_ylabel() == "test accuracy (higher is better)"
    assert ax.get_legend() is None  # the caller places one
    plt.close(fig)


def test_the_cost_plot_leaves_out_the_free_baseline_and_its_legend_sits_outside():
    fig, ax = plt.subplots()
    largest = _summary()[lambda s: s["n_train"] == 1000]
    figures.draw_cost(ax, largest, "accuracy", True, figures.model_name)
    figures.legend_outside(ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["XGBoost", "MLP (one-hot)"]  # the baseline costs nothing: not drawn
    assert ax.get_xscale() == "log" and "tuning wall-clock" in ax.get_xlabel()
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    plt.close(fig)


def test_a_shared_legend_sits_below_every_panel():
    fig, axs = plt.subplots(1, 2)
    for ax in axs:
        figures.draw_learning_curve(ax, _summary(), "accuracy", True, figures.model_name, "t")
    figures.shared_legend(fig, axs[0])
    (legend,) = fig.legends
    assert len(legend.get_texts()) == 3
    fig.canvas.draw()
    for ax in axs:
        assert legend.get_window_extent().y1 <= ax.get_window_extent().y0
    plt.close(fig)
