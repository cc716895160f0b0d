"""The lesson's figures: the decoder's training curve, decoding strategies, answer outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dlnb.plots import axes


def plot_training(losses: Sequence[float], levels: Mapping[str, float], smooth: int = 20, ax=None):
    """Training loss per step (and its moving average) against held-out levels of baselines."""
    fig, ax = axes(ax, (7, 3.5))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="0.75", lw=0.8, label="training loss (one batch)")
    if len(losses) >= smooth:
        avg = np.convolve(losses, np.ones(smooth) / smooth, mode="valid")
        ax.plot(steps[smooth - 1 :], avg, color="C0", label=f"moving average of {smooth}")
    for i, (name, value) in enumerate(levels.items()):
        ax.axhline(value, color=f"C{i + 1}", ls="--", label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title("Next-character prediction: training loss and held-out baselines")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig, ax


def plot_decoding(table: pd.DataFrame, ax=None):
    """Diversity across samples against repetition within them, one point per strategy."""
    fig, ax = axes(ax, (6, 4))
    for i, (_, row) in enumerate(table.iterrows()):
        ax.scatter(
            row["repeated 3-grams"], row["distinct-2"], s=60, color=f"C{i}", label=row["strategy"]
        )
    ax.set_xlabel("repeated 3-grams within a sample (share)")
    ax.set_ylabel("distinct-2 across samples")
    ax.set_title("Decoding strategies on the same prompt")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig, ax


def plot_outcomes(outcomes: Mapping[str, Mapping[str, float]], ax=None):
    """Stacked shares of correct / "I don't know" / hallucinated answers per condition."""
    fig, ax = axes(ax, (7, 2.8))
    names = list(outcomes)
    left = np.zeros(len(names))
    colours = {"correct": "C2", "abstained": "0.6", "hallucinated": "C3"}
    labels = {"correct": "correct", "abstained": '"I don\'t know"', "hallucinated": "hallucinated"}
    for outcome, colour in colours.items():
        share = np.array([outcomes[n][outcome] for n in names])
        ax.barh(names, share, left=left, color=colour, label=labels[outcome])
        left += share
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of questions")
    ax.set_title("Answers scored against the source page")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig, ax
