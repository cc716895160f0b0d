"""dlnb.vision.probes: linear probes on each layer's features, their table, figure and effects."""

from __future__ import annotations

import pytest
import torch

from dlnb.models import LeNet5
from dlnb.vision import probes, targets
from dlnb.vision.datasets import as_mnist

pytestmark = pytest.mark.usefixtures("single_thread", "one_blas_thread")


@pytest.fixture(scope="module")
def task():
    return targets.digits_task(pool_per_class=6, valid_per_class=4, seed=0)


def test_lenet_features_cover_every_cut_of_every_model(task):
    torch.manual_seed(0)
    models = {"a": LeNet5(num_classes=5), "b": LeNet5()}
    inputs = as_mnist(task.images[:7])
    features = probes.lenet_features(models, inputs)
    assert list(features) == ["a conv", "a fc1", "a fc2", "b conv", "b fc1", "b fc2"]
    assert [features[f"a {c}"].shape for c in ("conv", "fc1", "fc2")] == [
        (7, 400),
        (7, 120),
        (7, 84),
    ]
    torch.testing.assert_close(features["b conv"], models["b"].features(inputs).flatten(1))


def test_layer_probes_fit_every_feature_set_on_the_same_rows(task):
    torch.manual_seed(0)
    features = probes.lenet_features({"random": LeNet5()}, as_mnist(task.images), cuts=["conv"])
    frame = probes.layer_probes(task, features, [1, 3], [0, 1], cs=(0.1, 1.0))
    assert set(frame.method) == {"pixels", "random conv"} and len(frame) == 2 * 2 * 2
    assert set(frame.n_train) == {10, 30} and frame.test_accuracy.between(0, 1).all()
    pixels = frame[(frame.method == "pixels") & (frame.per_class == 3)].test_accuracy
    assert pixels.min() > 0.5  # 30 digits of pixels already separate the classes well


def synthetic_frame():
    import pandas as pd

    rows = []
    scores = {"pixels": 0.5, "pretrained conv": 0.7, "pretrained fc1": 0.6, "pretrained fc2": 0.55,
              "random conv": 0.52, "random fc1": 0.5, "random fc2": 0.45, "ImageNet": 0.56}  # fmt: skip
    for method, level in scores.items():
        for seed, jitter in enumerate((0.01, -0.01, 0.0, 0.02)):
            rows.append({"method": method, "per_class": 1, "seed": seed,
                         "test_accuracy": level + jitter})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_layer_table_ranks_feature_sets_with_intervals():
    table = probes.layer_table(synthetic_frame(), 1)
    assert table.index[0] == "pretrained conv" and table.loc["pretrained conv", "seeds"] == 4
    row = table.loc["pixels"]
    assert row["mean"] == pytest.approx(0.505) and row["low"] < row["mean"] < row["high"]


def test_layer_effects_pair_the_named_feature_sets():
    effects = probes.layer_effects(
        synthetic_frame(),
        1,
        {
            "pretraining": ("pretrained conv", "random conv"),
            "depth": ("pretrained fc2", "pretrained conv"),
        },
        names={"pretrained conv": "the source's convolutions"},
    )
    assert effects["pretraining"].diff == pytest.approx(0.18)
    assert effects["pretraining"].ours == "the source's convolutions"
    assert effects["depth"].verdict == "worse" and effects["depth"].n == 4


def test_the_layer_plot_has_labelled_axes_and_a_legend_outside_the_data():
    fig, ax = probes.plot_layer_probes(synthetic_frame(), 1, others=("pixels", "ImageNet"))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(labels) == {"LeNet-5, pretrained weights", "LeNet-5, random weights", "pixels",
                           "ImageNet"}  # fmt: skip
    assert ax.get_ylabel() == "test accuracy" and ax.get_xlabel() == "layer the probe reads"
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == [
        "convolutions", "dense 1", "dense 2",
    ]  # fmt: skip
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
