"""dlnb.plots: image grids place each image where its title says, confusion counts, worst examples."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

from dlnb import plots


def slot(canvas: np.ndarray, index: int, ncols: int, h: int, w: int) -> np.ndarray:
    """The cell of image `index` in an `image_grid` canvas (images are 2 pixels apart)."""
    r, c = divmod(index, ncols)
    return canvas[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w]


def test_axes_makes_a_figure_or_uses_the_one_given():
    fig, ax = plots.axes(None, (3.0, 2.0))
    assert ax.figure is fig and tuple(fig.get_size_inches()) == (3.0, 2.0)
    before = plt.get_fignums()
    assert plots.axes(ax, (9.0, 9.0)) == (fig, ax)
    assert plt.get_fignums() == before, "an axes given is drawn on, no new figure"


def test_image_grid_places_each_image_in_row_major_cells():
    images = np.stack([np.full((4, 5), i, dtype=float) for i in range(5)])  # image i is all i
    fig, ax = plots.image_grid(images, ncols=3)
    (shown,) = ax.images
    canvas = np.asarray(shown.get_array().filled(np.nan), dtype=float)
    assert canvas.shape == (2 * (4 + 2), 3 * (5 + 2))
    for i in range(5):
        np.testing.assert_array_equal(slot(canvas, i, 3, 4, 5), i)
    assert np.isnan(slot(canvas, 5, 3, 4, 5)).all(), "the unused cell stays empty"
    assert np.isnan(canvas[:, 5:7]).all() and np.isnan(canvas[4:6]).all(), "2-pixel gaps"
    assert not ax.axison and shown.get_cmap().name == "gray"


def test_image_grid_reads_channel_first_batches():
    grey = np.arange(2 * 3 * 3, dtype=float).reshape(2, 1, 3, 3)
    _, ax = plots.image_grid(grey, ncols=2, cmap="viridis")
    canvas = np.asarray(ax.images[0].get_array().filled(np.nan), dtype=float)
    np.testing.assert_array_equal(slot(canvas, 1, 2, 3, 3), grey[1, 0])
    assert ax.images[0].get_cmap().name == "viridis"

    rgb = np.random.default_rng(0).random((3, 3, 4, 2))  # (N, C, H, W)
    _, ax = plots.image_grid(rgb, ncols=3)
    canvas = np.asarray(ax.images[0].get_array().filled(np.nan), dtype=float)
    assert canvas.shape == (4 + 2, 3 * (2 + 2), 3)
    np.testing.assert_array_equal(slot(canvas, 2, 3, 4, 2), rgb[2].transpose(1, 2, 0))


def test_image_grid_titles_sit_above_their_images():
    fig, ax = plt.subplots()
    returned = plots.image_grid(np.zeros((4, 6, 6)), titles=[7, "b", 3.5, None], ncols=2, ax=ax)
    assert returned == (fig, ax)
    assert [t.get_text() for t in ax.texts] == ["7", "b", "3.5", "None"]
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = [t.get_position() for t in ax.texts]
    assert (x0, x1, x2, x3) == (3, 11, 3, 11) and y0 == y1 and y2 == y3 > y0 + 6
    assert all(t.get_ha() == "center" and t.get_va() == "bottom" for t in ax.texts)


def _tile_boxes(ax, n: int, ncols: int, h: int, w: int):
    """The display-space box of each tile, found from the canvas's non-NaN cells."""
    from matplotlib.transforms import Bbox

    canvas = np.asarray(ax.images[0].get_array().filled(np.nan), dtype=float)
    rows = np.flatnonzero(~np.isnan(canvas).all(axis=1))
    starts = [r for i, r in enumerate(rows) if i == 0 or rows[i - 1] != r - 1]
    boxes = []
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = starts[r], c * (w + 2)
        corners = ax.transData.transform([(left - 0.5, top - 0.5), (left + w - 0.5, top + h - 0.5)])
        boxes.append(Bbox([corners.min(axis=0), corners.max(axis=0)]))
    return boxes


@pytest.mark.parametrize(
    ("shape", "ncols", "titles", "figsize"),
    [
        ((32, 28, 28), 8, [str(i % 10) for i in range(32)], None),  # 01's batch grid
        ((16, 28, 28), 8, [f"{i % 10}→{(i + 3) % 10}" for i in range(16)], None),  # worst digits
        ((20, 8, 8), 10, ["airplane"] * 20, (12, 2.2)),  # a small given axes, as in 04
        ((6, 28, 28), 3, ["true 1\npred 7"] * 6, None),  # two-line titles
    ],
)
def test_image_grid_titles_do_not_overlap_the_row_above(shape, ncols, titles, figsize):
    # Issue 16 item 3: titles 0.5 px above a tile with a 2 px row gap landed on the row above.
    ax = plt.subplots(figsize=figsize)[1] if figsize else None
    fig, ax = plots.image_grid(np.ones(shape), titles=titles, ncols=ncols, ax=ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tiles = _tile_boxes(ax, shape[0], ncols, *shape[1:])
    for i, text in enumerate(ax.texts):
        box = text.get_window_extent(renderer)
        assert box.y0 >= tiles[i].y1 - 0.5, "a title sits above its own tile"
        for j, tile in enumerate(tiles):
            shrunk = tile.expanded(1, 1).padded(-0.5)  # touching an edge is not overlapping
            assert not box.overlaps(shrunk), f"title {i} overlaps tile {j}"
    plt.close(fig)


def test_image_grid_refuses_shapes_that_are_not_images():
    with pytest.raises(ValueError, match=r"got shape \(4, 5\)"):
        plots.image_grid(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="image_grid expects"):
        plots.image_grid(np.zeros((1, 2, 3, 4, 5)))


def test_confusion_matrix_counts_true_by_predicted():
    y_true, y_pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]
    matrix = plots.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.dtype.kind == "i" and matrix.sum() == len(y_true)
    assert plots.confusion_matrix([0, 1], [1, 3]).shape == (4, 4), "classes seen in either"
    padded = plots.confusion_matrix(y_true, y_pred, num_classes=5)
    assert padded.shape == (5, 5) and padded[3:].sum() == padded[:, 3:].sum() == 0
    with pytest.raises(ValueError, match="same shape"):
        plots.confusion_matrix([0, 1, 2], [0, 1])


def annotations(ax) -> dict[tuple[int, int], str]:
    """The heatmap's cell texts by (row, column)."""
    return {(int(t.get_position()[1]), int(t.get_position()[0])): t.get_text() for t in ax.texts}


def test_plot_confusion_annotates_counts_with_rows_as_the_true_class():
    fig, ax = plots.plot_confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], labels=["a", "b", "c"])
    assert annotations(ax) == {
        (0, 0): "1",
        (0, 1): "1",
        (0, 2): "0",
        (1, 0): "0",
        (1, 1): "1",
        (1, 2): "0",
        (2, 0): "1",
        (2, 1): "0",
        (2, 2): "2",
    }
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "predicted",
        "true",
        "confusion matrix",
    )


def test_plot_confusion_normalises_each_true_class_and_survives_an_empty_one():
    fig, ax = plt.subplots()
    labels = ["a", "b", "c"]  # no example is truly "c"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no division by zero
        returned = plots.plot_confusion([0, 0, 0, 0, 1], [0, 1, 1, 2, 1], labels, True, ax)
    assert returned == (fig, ax)
    cells = annotations(ax)
    assert [cells[0, j] for j in range(3)] == ["0.25", "0.50", "0.25"]
    assert [cells[1, j] for j in range(3)] == ["0.00", "1.00", "0.00"]
    assert [cells[2, j] for j in range(3)] == ["0.00", "0.00", "0.00"]


def test_worst_examples_rank_by_cross_entropy_worst_first():
    logits = np.array([[5.0, 0.0], [0.0, 5.0], [2.0, 2.0], [0.0, 1.0], [-3.0, 3.0]])
    targets = np.array([0, 0, 0, 1, 0])
    # losses: 0.007, 5.007, 0.693, 0.313, 6.002
    np.testing.assert_array_equal(plots.worst_examples(logits, targets), [4, 1, 2, 3, 0])
    np.testing.assert_array_equal(plots.worst_examples(logits, targets, k=2), [4, 1])


def test_worst_examples_match_the_loss_of_a_softmax_and_stay_finite():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(50, 10)) * 3, rng.integers(0, 10, 50)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    losses = -np.log(probs[np.arange(50), targets])
    np.testing.assert_array_equal(plots.worst_examples(logits, targets, k=50), np.argsort(-losses))
    huge = np.array([[1000.0, 0.0], [0.0, 1000.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow in exp
        worst = plots.worst_examples(huge, [0, 0, 0])
    np.testing.assert_array_equal(worst, [1, 2, 0])
