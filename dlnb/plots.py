"""Plots for classification results: image grids, confusion matrices, worst-classified examples.

Every function takes an optional `ax=` and returns `(fig, ax)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """`(ax.figure, ax)`, or with `ax=None` a new figure of `figsize` and its one axes."""
    if ax is not None:
        return cast("Figure", ax.figure), ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


TITLE_PT = 8  # font size of image_grid titles


def _title_band(ax, titles, nrows: int, ncols: int, h: int, w: int) -> int:
    """Pixels above each row that hold its titles at `TITLE_PT`, for the scale `ax` draws at."""
    lines = max((str(t).count("\n") + 1 for t in titles), default=1)
    text_in = lines * TITLE_PT * 1.3 / 72 + 0.03  # line height plus a little air, inches
    fig_w, fig_h = ax.figure.get_size_inches()
    box = ax.get_position()
    band = max(2, h // 4)
    for _ in range(4):  # the scale depends on the band (equal aspect), so iterate to a fixed point
        inch_per_px = min(
            fig_w * box.width / (ncols * (w + 2)), fig_h * box.height / (nrows * (h + 2 + band))
        )
        band = max(2, int(np.ceil(text_in / inch_per_px)))
    return band


def image_grid(images, titles=None, ncols: int = 8, ax=None, cmap: str = "gray"):
    """Show images (N, H, W) or (N, 1, H, W) in a grid on one axes; returns (fig, ax).

    Images are 2 pixels apart; with `titles`, each row has a band above it tall enough for its
    titles, so no title overlaps the row above.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"image_grid expects (N, H, W) or (N, C, H, W) images, got shape {images.shape}."
        )
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    h, w = images.shape[1:3]
    fig, ax = axes(ax, (1.2 * ncols, 1.4 * nrows))
    band = 0 if titles is None else _title_band(ax, titles, nrows, ncols, h, w)
    row = h + 2 + band
    canvas = np.full((nrows * row, ncols * (w + 2)) + images.shape[3:], np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * row + band : r * row + band + h, c * (w + 2) : c * (w + 2) + w] = img
    ax.imshow(canvas, cmap=cmap)
    ax.set_axis_off()
    for i, title in enumerate(titles or []):
        r, c = divmod(i, ncols)
        ax.text(
            c * (w + 2) + w / 2,
            r * row + band - 0.5,
            str(title),
            ha="center",
            va="bottom",
            fontsize=TITLE_PT,
        )
    return fig, ax


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape."
        )
    k = num_classes or int(max(y_true.max(), y_pred.max())) + 1
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def plot_confusion(y_true, y_pred, labels=None, normalize: bool = False, ax=None):
    """A seaborn heatmap of the confusion matrix (rows: true class); returns (fig, ax)."""
    import seaborn as sns

    matrix = confusion_matrix(y_true, y_pred, len(labels) if labels is not None else None)
    data = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1) if normalize else matrix
    fig, ax = axes(ax, (6, 5))
    sns.heatmap(
        data,
        annot=True,
        fmt=".2f" if normalize else "d",
        cmap="Blues",
        cbar=False,
        xticklabels=labels if labels is not None else "auto",
        yticklabels=labels if labels is not None else "auto",
        ax=ax,
    )
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    return fig, ax


def worst_examples(logits, targets, k: int = 16) -> np.ndarray:
    """Indices of the `k` examples with the highest cross-entropy loss, worst first."""
    logits, targets = np.asarray(logits, dtype=np.float64), np.asarray(targets, dtype=int)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    losses = -log_probs[np.arange(len(targets)), targets]
    return np.argsort(-losses)[:k]
