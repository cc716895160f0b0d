"""Plots for `dlnb.interpret`: overlays, method grids, top predictions, tokens, sanity curves.

Every function takes `ax=` (or `axes=`) and returns `(fig, ax)`, like captum's visualization
module; with no axes it makes a new figure.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from dlnb.plots import axes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from dlnb.interpret.attribution import Attribution, TokenAttribution
    from dlnb.interpret.sanity import SanityResult


def as_image(
    x, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> np.ndarray:
    """A model input (C, H, W) as a displayable (H, W, 3) or (H, W) float image in [0, 1]."""
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if mean is not None and std is not None:
        a = a * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    else:
        a = (a - a.min()) / max(float(a.max() - a.min()), 1e-8)
    a = np.clip(a, 0, 1)
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def normalise_heatmap(heatmap: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Scale a non-negative map to [0, 1], clipping the top (100 - percentile) % of outliers."""
    h = np.abs(np.asarray(heatmap, dtype=np.float32))
    top = float(np.percentile(h, percentile))
    return np.clip(h / top, 0, 1) if top > 0 else np.zeros_like(h)


def plot_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    ax: Axes | None = None,
    *,
    alpha: float = 0.6,
    cmap: str = "inferno",
    title: str | None = None,
    colorbar: bool = True,
    label: str = "|attribution|",
) -> tuple[Figure, Axes]:
    """The image with the attribution heatmap laid over it (stretched to the image's size).

    The colorbar is in the map's own units, saturating at its 99th percentile (as the overlay).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig, ax = axes(ax, (4, 4))
    image = np.asarray(image)
    h, w = image.shape[:2]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    heat = normalise_heatmap(heatmap)
    ax.imshow(heat, cmap=cmap, alpha=alpha * heat, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    ax.set_axis_off()
    if colorbar:
        top = float(np.percentile(np.abs(heatmap), 99.0)) or 1.0
        bar = fig.colorbar(ScalarMappable(Normalize(0, top), cmap), ax=ax, fraction=0.046, pad=0.02)
        bar.set_label(label, fontsize=7)
        bar.ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def evidence_label(method: str, sanity: Mapping[str, SanityResult] | None) -> str:
    """What a map of `method` is worth: 'sanity check passed (0.11)', 'sanity check FAILED (0.62):
    not evidence', 'sanity check borderline (0.48): not evidence', or 'not sanity-checked'."""
    result = (sanity or {}).get(method)
    if result is None:
        return "not sanity-checked"
    suffix = "" if result.passed else ": not evidence"
    return f"sanity check {result.label()}{suffix}"


def plot_methods(
    image: np.ndarray,
    results: dict[str, Attribution],
    index: int = 0,
    axes: Sequence[Axes] | None = None,
    *,
    sanity: Mapping[str, SanityResult] | None = None,
) -> tuple[Figure, Sequence[Axes]]:
    """The image, then one overlay per attribution method, for sample `index`.

    With `sanity` (method -> `SanityResult`), each title says what its map is worth
    (`evidence_label`), in red where the method did not pass.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(results) + 1, figsize=(2.6 * (len(results) + 1), 2.9))
    fig = cast("Figure", axes[0].figure)  # as `dlnb.plots.axes` does
    axes[0].imshow(image, cmap="gray" if np.ndim(image) == 2 else None)
    axes[0].set_axis_off()
    axes[0].set_title("input", fontsize=9)
    for ax, (name, res) in zip(axes[1:], results.items(), strict=False):
        title = name.replace("_", " ")
        if res.relative_delta is not None:
            title += f"\nrel. delta {res.relative_delta[index]:.1%}"
        if sanity is not None:
            title += "\n" + evidence_label(name, sanity).replace(": not evidence", "")
        label = "Grad-CAM" if res.method == "gradcam" else "|attribution|"
        plot_overlay(image, res.heatmaps()[index], ax, title=title, label=label)
        checked = (sanity or {}).get(name)
        if sanity is not None and (checked is None or not checked.passed):
            ax.title.set_color("tab:red")
    return fig, axes


def plot_top_predictions(
    probabilities: np.ndarray,
    class_names: Sequence[str] | None = None,
    k: int = 5,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """Horizontal bars of the `k` most probable classes."""
    fig, ax = axes(ax, (4, 2.5))
    p = np.asarray(probabilities).ravel()
    top = np.argsort(p)[::-1][:k]
    names = [str(class_names[i]) if class_names is not None else str(i) for i in top]
    ax.barh(range(len(top))[::-1], p[top], color="tab:blue")
    ax.set_yticks(range(len(top))[::-1], names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    return fig, ax


def _token_colour(value: float) -> tuple[float, float, float]:
    """Green for support of the target, red against, white for nothing (value in [-1, 1])."""
    v = float(np.clip(value, -1, 1))
    if v >= 0:
        return (1 - 0.6 * v, 1 - 0.25 * v, 1 - 0.6 * v)
    return (1.0, 1 + 0.6 * v, 1 + 0.6 * v)


def _scaled(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    top = float(np.abs(v).max())
    return v / top if top > 0 else v


def tokens_html(tokens: Sequence[str], values: np.ndarray) -> str:
    """Tokens as HTML spans coloured by their (signed) attribution."""
    spans = []
    for tok, v in zip(tokens, _scaled(values), strict=True):
        r, g, b = (int(255 * c) for c in _token_colour(v))
        spans.append(
            f'<span title="{v:+.2f}" style="background: rgb({r},{g},{b}); padding: 1px 3px; '
            f'margin: 1px; border-radius: 3px; display: inline-block">{html.escape(tok)}</span>'
        )
    return "<div style='line-height: 1.9; font-family: monospace'>" + "".join(spans) + "</div>"


def plot_tokens(
    tokens: Sequence[str],
    values: np.ndarray,
    ax: Axes | None = None,
    *,
    per_line: int = 12,
    title: str | None = None,
    colorbar: bool = True,
) -> tuple[Figure, Axes]:
    """Tokens laid out in lines, each boxed in a colour given by its attribution (with a colorbar)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    lines = max(1, -(-len(tokens) // per_line))
    fig, ax = axes(ax, (10, 0.5 + 0.45 * lines))
    for i, (tok, v) in enumerate(zip(tokens, _scaled(values), strict=True)):
        row, col = divmod(i, per_line)
        ax.text(
            col / per_line,
            1 - (row + 0.5) / lines,
            tok,
            fontsize=9,
            family="monospace",
            va="center",
            bbox={"facecolor": _token_colour(v), "edgecolor": "none", "pad": 2},
        )
    ax.set_axis_off()
    if colorbar:
        top = float(np.abs(np.asarray(values, dtype=np.float32)).max()) or 1.0
        colours = ListedColormap([_token_colour(v) for v in np.linspace(-1, 1, 256)])
        bar = fig.colorbar(
            ScalarMappable(Normalize(-top, top), colours), ax=ax, fraction=0.03, pad=0.01
        )
        bar.set_label("attribution", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig, ax


def plot_text_attributions(
    results: Sequence[TokenAttribution],
    class_names: Sequence[str],
    true_labels: Sequence[str],
    *,
    check: str = "",
) -> Figure:
    """One row of coloured tokens per text: predicted class (probability), true class, the IG
    delta, and `check` (what the sanity check said about these attributions)."""
    import matplotlib.pyplot as plt

    heights = [0.7 + 0.3 * -(-len(r.tokens) // 12) for r in results]  # title + token lines
    fig, rows = plt.subplots(len(results), 1, figsize=(10, sum(heights)), height_ratios=heights)
    for ax, r, truth in zip(np.atleast_1d(rows), results, true_labels, strict=True):
        title = (
            f"predicted {class_names[r.target]} ({r.probabilities[r.target]:.0%}), true {truth}, "
            f"IG delta {r.relative_delta:.2%}" + (f"; {check}" if check else "")
        )
        plot_tokens(r.tokens, r.values, ax, title=title)
    fig.tight_layout()
    return fig


def plot_sanity(results: Sequence[SanityResult], ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Spearman correlation with the trained model's map as layers are randomised.

    A result of mode "full" (every layer at once) is drawn as one point at the last step, where
    the cascading curves also have every layer randomised.
    """
    fig, ax = axes(ax, (6, 3))
    longest = max(results, key=lambda r: len(r.steps))
    last = len(longest.steps)
    for r in results:
        if r.mode == "full" and last > 1:
            ax.plot(
                [0, last], [1.0, r.final], marker="o", ls=":", label=f"{r.method} (all at once)"
            )
        else:
            ax.plot(range(len(r.spearman) + 1), [1.0, *r.spearman], marker="o", label=r.method)
    bound = results[0].bound
    ax.axhline(bound, color="grey", ls="--", lw=1, label=f"bound {bound}")
    ax.axhline(-bound, color="grey", ls="--", lw=1)
    ax.set_xticks(range(last + 1), ["trained", *longest.steps], rotation=30, fontsize=7)
    ax.set_xlabel("layers randomised (cumulative, from the logits down)", fontsize=8)
    ax.set_ylabel("Spearman vs trained")
    ax.set_ylim(-1, 1.05)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig, ax


def plot_agreement(table: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """A matrix of pairwise rank correlations between methods (from `compare_methods`)."""
    fig, ax = axes(ax, (4.5, 4))
    im = ax.imshow(table.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    labels = [c.replace("_", " ") for c in table.columns]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        colour = "white" if abs(v) > 0.6 else "black"
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig, ax


def plot_importance(table: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Grouped horizontal bars, one column of `table` (features x sources) per colour."""
    fig, ax = axes(ax, (6, 0.3 * len(table) + 1))
    table[::-1].plot.barh(ax=ax, width=0.8)
    ax.set_xlabel("share of total importance")
    ax.legend(
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.6 / (0.3 * len(table) + 1)),
        ncols=min(3, table.shape[1]),
        frameon=False,
    )
    return fig, ax


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (for an ipywidgets Image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()
