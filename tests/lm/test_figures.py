"""The lesson's figures: labelled axes, legends off the data."""

from __future__ import annotations

import pandas as pd

from dlnb.lm import figures


def _legend_outside(ax):
    legend = ax.get_legend()
    return legend is not None and legend.get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1


def test_training_curve_has_baseline_levels_and_labels():
    fig, ax = figures.plot_training([4.0, 3.0, 2.5] * 10, {"bigram": 2.4, "unigram": 3.4}, smooth=5)
    assert ax.get_xlabel() == "training step" and "nats" in ax.get_ylabel()
    assert len(ax.lines) == 4 and _legend_outside(ax)


def test_decoding_plot_has_one_point_per_strategy():
    table = pd.DataFrame(
        {
            "strategy": ["greedy", "top-k 20"],
            "distinct-2": [0.2, 0.9],
            "repeated 3-grams": [0.5, 0.1],
        }
    )
    fig, ax = figures.plot_decoding(table)
    assert len(ax.collections) == 2 and ax.get_xlabel() and ax.get_ylabel() and _legend_outside(ax)


def test_outcome_bars_stack_to_one():
    outcomes = {
        "with retrieval": {"correct": 0.8, "abstained": 0.05, "hallucinated": 0.15},
        "closed-book": {"correct": 0.0, "abstained": 0.0, "hallucinated": 1.0},
    }
    fig, ax = figures.plot_outcomes(outcomes)
    ends = {}
    for bar in ax.patches:
        ends[bar.get_y()] = max(ends.get(bar.get_y(), 0), bar.get_x() + bar.get_width())
    assert all(abs(e - 1.0) < 1e-9 for e in ends.values()) and _legend_outside(ax)
