"""dlnb.interpret.plots: overlays, method grids, token colours and importance charts draw what they show."""

from __future__ import annotations

import numpy as np
import torch

from dlnb.interpret import plots as iplot
from dlnb.interpret.attribution import attribute
from dlnb.interpret.sanity import compare_methods, sanity_check


def test_plots_draw_on_the_given_axes(patch_model, patch_data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, _ = patch_data
    results = {m: attribute(patch_model, x[:2], 1, m) for m in ("integrated_gradients", "gradcam")}
    image = iplot.as_image(x[0])
    assert image.shape == (16, 16) and 0 <= image.min() and image.max() <= 1
    rgb = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    restored = iplot.as_image((torch.from_numpy(rgb) - 0.5) / 0.25, (0.5,) * 3, (0.25,) * 3)
    np.testing.assert_allclose(restored, rgb.transpose(1, 2, 0), atol=1e-6)  # undoes normalise
    fig, ax = plt.subplots()
    assert iplot.plot_overlay(image, results["gradcam"].heatmaps()[0], ax) == (fig, ax)
    assert len(ax.images) == 2  # the picture and the heatmap on top
    fig, axes = iplot.plot_methods(image, results)
    assert len(axes) == 3 and "rel. delta" in axes[1].get_title()
    fig, ax = iplot.plot_top_predictions(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], k=2)
    y = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert set(y) == {"b", "c"} and y["b"] > y["c"]  # the top two, best on top
    fig, ax = iplot.plot_tokens(["[CLS]", "good", "[SEP]"], np.array([0.0, 1.0, -0.5]))
    assert [t.get_text() for t in ax.texts] == ["[CLS]", "good", "[SEP]"]
    sanity = sanity_check(patch_model, x[:4], method="saliency", mode="cascading", n_groups=2)
    fig, ax = iplot.plot_sanity([sanity])
    assert len(ax.lines[0].get_xdata()) == 3  # trained + two cascade steps
    fig, ax = iplot.plot_agreement(compare_methods(results))
    assert len(ax.texts) == 4
    import pandas as pd

    table = pd.DataFrame({"a": [0.6, 0.4], "b": [0.5, 0.5]}, index=["f1", "f2"])
    fig, ax = iplot.plot_importance(table)
    assert len(ax.patches) == 4 and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a",
        "b",
    ]
    assert iplot.figure_png(fig).startswith(b"\x89PNG")
    plt.close("all")


def test_attribution_maps_carry_a_colorbar_in_their_own_units():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heat = np.linspace(0, 2.0, 100).reshape(10, 10)
    fig, ax = iplot.plot_overlay(np.zeros((10, 10)), heat)
    bars = [a for a in fig.axes if a is not ax]
    assert len(bars) == 1 and bars[0].get_ylabel() == "|attribution|"
    assert bars[0].get_ylim()[1] == np.percentile(heat, 99)  # saturates where the overlay does
    fig, ax = iplot.plot_overlay(np.zeros((10, 10)), heat, colorbar=False)
    assert fig.axes == [ax]
    fig, ax = iplot.plot_tokens(["a", "b"], np.array([0.5, -2.0]))
    (bar,) = [a for a in fig.axes if a is not ax]
    assert bar.get_ylim() == (-2.0, 2.0)  # symmetric: red against, green for the target
    plt.close("all")


def test_tokens_html_escapes_and_colours():
    out = iplot.tokens_html(["<script>", "good", "bad"], np.array([0.0, 2.0, -2.0]))
    assert "&lt;script&gt;" in out and "<script>" not in out
    assert "rgb(102,191,102)" in out  # full support: green
    assert "rgb(255,102,102)" in out  # full opposition: red
    assert iplot.normalise_heatmap(np.zeros((3, 3))).max() == 0


def test_maps_say_what_their_sanity_check_found(patch_model, patch_data):
    import matplotlib.pyplot as plt

    from dlnb.interpret.sanity import SanityResult

    x, _ = patch_data
    results = {m: attribute(patch_model, x[:1], 1, m) for m in ("saliency", "gradcam", "occlusion")}
    sanity = {
        "saliency": SanityResult("saliency", "cascading", ["all"], [0.1], 0.5, [0.1, 0.12, 0.08]),
        "gradcam": SanityResult("gradcam", "cascading", ["all"], [0.62], 0.5, [0.6, 0.62, 0.64]),
    }
    assert iplot.evidence_label("saliency", sanity) == "sanity check passed (0.10)"
    assert iplot.evidence_label("gradcam", sanity) == "sanity check FAILED (0.62): not evidence"
    assert iplot.evidence_label("occlusion", sanity) == "not sanity-checked"
    fig, axes = iplot.plot_methods(iplot.as_image(x[0]), results, sanity=sanity)
    titles = {ax.get_title().split("\n")[0]: ax.title for ax in axes[1:]}
    assert "passed (0.10)" in titles["saliency"].get_text()
    assert "FAILED (0.62)" in titles["gradcam"].get_text()
    assert "not sanity-checked" in titles["occlusion"].get_text()
    assert (
        titles["gradcam"].get_color() == "tab:red" and titles["occlusion"].get_color() == "tab:red"
    )
    assert titles["saliency"].get_color() != "tab:red"
    cascade = SanityResult("saliency", "cascading", ["a", "b", "c"], [0.5, 0.3, 0.1], 0.5)
    full = SanityResult("occlusion", "full", ["all layers"], [0.2], 0.5)
    fig, ax = iplot.plot_sanity([cascade, full])
    xs = [line.get_xdata().tolist() for line in ax.lines[:2]]
    assert xs == [[0, 1, 2, 3], [0, 3]]  # the all-at-once point sits at the last step
    assert "occlusion (all at once)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close("all")
