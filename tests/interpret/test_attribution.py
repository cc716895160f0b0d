"""dlnb.interpret: attributions find what a model with a known answer uses, and bad inputs fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlnb.interpret import plots as iplot
from dlnb.interpret.attribution import (
    METHODS,
    attribute,
    attribute_text,
    find_layer,
    last_conv_layer,
    make_baseline,
)
from dlnb.interpret.sanity import compare_methods, sanity_check, spearman
from dlnb.interpret.tabular import attribute_tabular, importance_table, xgboost_importance
from tests.assets import tiny_models


@pytest.fixture(scope="module")
def patch_model():
    return tiny_models.train_patch_cnn()


@pytest.fixture(scope="module")
def patch_data():
    x, y, mask = tiny_models.patch_images(32, seed=123)
    return x[y == 1], mask[y == 1]  # 16 images that hold a patch


def test_patch_model_learned_the_task(patch_model):
    x, y, _ = tiny_models.patch_images(256, seed=7)
    accuracy = (patch_model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.95  # otherwise the attribution tests below prove nothing


@pytest.mark.parametrize("method", METHODS)
def test_each_method_puts_its_mass_on_the_patch(patch_model, patch_data, method):
    x, mask = patch_data
    res = attribute(patch_model, x, target=1, method=method)
    expected_shape = (16, 16, 16) if method == "gradcam" else tuple(x.shape)
    assert res.values.shape == expected_shape
    assert isinstance(res.values, np.ndarray)
    heat = res.heatmaps()
    share = (heat * mask.numpy()).sum(axis=(1, 2)) / heat.sum(axis=(1, 2))
    area = tiny_models.PATCH**2 / tiny_models.SIZE**2  # 6 %: what a map blind to the patch gets
    assert np.median(share) > 4 * area, (
        f"{method}: median share on the patch {np.median(share):.2f}"
    )
    assert (res.targets == 1).all()


def test_integrated_gradients_is_complete(patch_model, patch_data):
    x, _ = patch_data
    res = attribute(patch_model, x, target=1, n_steps=64)
    with torch.no_grad():
        gap = (patch_model(x) - patch_model(torch.zeros_like(x)))[:, 1].numpy()
    sums = res.values.reshape(len(x), -1).sum(axis=1)
    np.testing.assert_allclose(sums, gap, rtol=0.02, atol=1e-3)  # completeness, checked here
    assert res.relative_delta.max() < 0.02
    np.testing.assert_allclose(res.delta, np.abs(sums - gap), rtol=1e-3, atol=1e-4)


def test_default_target_is_the_prediction(patch_model, patch_data):
    x, _ = patch_data
    res = attribute(patch_model, x, method="saliency")
    np.testing.assert_array_equal(res.targets, patch_model(x).argmax(1).numpy())
    np.testing.assert_allclose(res.probabilities.sum(1), 1, rtol=1e-5)


def test_baselines(patch_data):
    x, _ = patch_data
    assert make_baseline(x, "zero").abs().sum() == 0
    blur = make_baseline(x, "blur")
    assert blur.shape == x.shape and blur.std() < x.std()  # smoother than the image
    flat = torch.full((1, 1, 16, 16), 0.7)
    torch.testing.assert_close(make_baseline(flat, "blur"), flat)
    u1, u2 = make_baseline(x, "uniform"), make_baseline(x, "uniform")
    torch.testing.assert_close(u1, u2)  # seeded
    assert u1.min() >= x.min() and u1.max() <= x.max()
    assert make_baseline(x, torch.ones(1, 1, 1, 1)).shape == x.shape
    with pytest.raises(ValueError, match="Unknown baseline 'grey'"):
        make_baseline(x, "grey")
    with pytest.raises(ValueError, match="blur baseline needs images"):
        make_baseline(torch.zeros(2, 5), "blur")


def test_unknown_layer_lists_the_available_names(patch_model, patch_data):
    x, _ = patch_data
    with pytest.raises(ValueError, match="Available layer names: conv1, conv2, head") as err:
        attribute(patch_model, x, method="gradcam", layer="conv3")
    assert "Did you mean 'conv1'" in str(err.value) or "Did you mean 'conv2'" in str(err.value)
    assert find_layer(patch_model, "conv1") is patch_model.conv1
    assert last_conv_layer(patch_model) == "conv2"
    with pytest.raises(ValueError, match="no Conv2d layer"):
        attribute(nn.Sequential(nn.Flatten(), nn.Linear(256, 2)), x, method="gradcam")


def test_target_out_of_range(patch_model, patch_data):
    x, _ = patch_data
    with pytest.raises(ValueError, match="Target 5 is out of range: the model has 2 classes"):
        attribute(patch_model, x, target=5)
    with pytest.raises(ValueError, match="Target -1 is out of range"):
        attribute(patch_model, x, target=-1)
    with pytest.raises(ValueError, match="Got 3 targets for a batch of 16"):
        attribute(patch_model, x, target=[0, 1, 1])


def test_input_of_the_wrong_shape(patch_model, patch_data):
    x, _ = patch_data
    with pytest.raises(ValueError, match=r"cannot take an input of shape \(16, 3, 16, 16\)"):
        attribute(patch_model, x.repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"leading batch dimension.*unsqueeze\(0\)"):
        attribute(nn.Linear(4, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        attribute(patch_model, x.numpy())
    with pytest.raises(TypeError, match="floating point"):
        attribute(patch_model, x.long())
    with pytest.raises(ValueError, match="Unknown method 'lime'"):
        attribute(patch_model, x, method="lime")
    with pytest.raises(ValueError, match="Occlusion here slides over images"):
        attribute(nn.Linear(4, 2), torch.zeros(3, 4), method="occlusion")


def test_attribute_restores_training_mode(patch_data):
    model = tiny_models.PatchCNN().train()
    attribute(model, patch_data[0][:2], method="saliency")
    assert model.training


def test_sanity_check_passes_for_the_model_and_fails_for_an_edge_detector(patch_model, patch_data):
    x, _ = patch_data
    result = sanity_check(patch_model, x, target=1, method="saliency", mode="full")
    assert result.steps == ["all layers"] and len(result.spearman) == 1
    assert result.passed, result.spearman  # the map depends on the learned weights

    def edge_detector(model, inputs, targets):  # ignores the model: the failure Adebayo found
        return inputs[:, 0].abs().numpy()

    blind = sanity_check(patch_model, x, method=edge_detector, mode="cascading", n_groups=3)
    assert blind.spearman == pytest.approx([1.0, 1.0, 1.0])
    assert not blind.passed
    assert blind.steps == ["head", "conv2", "conv1"]  # from the logits down


def test_sanity_check_does_not_modify_the_model(patch_model, patch_data):
    before = {k: v.clone() for k, v in patch_model.state_dict().items()}
    sanity_check(patch_model, patch_data[0][:4], method="gradcam", mode="cascading")
    for k, v in patch_model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_compare_methods_and_spearman(patch_model, patch_data):
    x, _ = patch_data
    results = {m: attribute(patch_model, x, 1, m) for m in ("saliency", "gradcam")}
    table = compare_methods(results)
    assert list(table.columns) == ["saliency", "gradcam"]
    np.testing.assert_allclose(np.diag(table), 1.0)
    assert table.loc["saliency", "gradcam"] == pytest.approx(table.loc["gradcam", "saliency"])
    assert spearman(np.arange(5), np.arange(5) ** 2) == pytest.approx(1.0)
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)
    assert spearman(np.ones(5), np.arange(5)) == 0.0


def test_tabular_attributions_recover_a_linear_model():
    rng = np.random.default_rng(0)
    w = np.array([3.0, -2.0, 0.0, 0.5], dtype=np.float32)
    background = rng.normal(size=(200, 4)).astype(np.float32)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    exact = w * (x - background.mean(axis=0))  # Shapley values of a linear model
    for method in ("shapley", "ablation"):
        got = attribute_tabular(lambda a: a @ w, x, background, method, n_samples=5)
        np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="same F"):
        attribute_tabular(lambda a: a @ w, x[:, :3], background)
    with pytest.raises(ValueError, match="Unknown tabular method"):
        attribute_tabular(lambda a: a @ w, x, background, "lime")


def test_xgboost_importances_find_the_informative_features():
    import xgboost

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (2 * x[:, 1] - x[:, 3] > 0).astype(int)  # only features 1 and 3 matter
    clf = xgboost.XGBClassifier(n_estimators=30, max_depth=2, random_state=0).fit(x, y)
    margin = lambda a: clf.predict(a, output_margin=True)  # noqa: E731
    shapley = attribute_tabular(margin, x[:40], x, n_samples=10)
    sources = {
        "shapley": shapley,
        "gain": xgboost_importance(clf, "gain"),
        "treeshap": xgboost_importance(clf, "shap", x[:40]),
    }
    table = importance_table(sources, [f"x{i}" for i in range(5)])
    np.testing.assert_allclose(table.sum(), 1.0)
    for column in table:
        assert set(table[column].nlargest(2).index) == {"x1", "x3"}, column
    assert table.index[0] == "x1"  # sorted by the first source; x1 has twice the weight
    with pytest.raises(ValueError, match="needs the rows"):
        xgboost_importance(clf, "shap")
    with pytest.raises(ValueError, match=r"shaped \(N, 5\)"):
        xgboost_importance(clf, "shap", x[:, :3])
    with pytest.raises(ValueError, match="has 3 values for 5 features"):
        importance_table({"bad": np.ones(3)}, [f"x{i}" for i in range(5)])


@pytest.mark.slow
def test_text_attribution_finds_the_sentiment_word(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = tiny_models.minilm_tokenizer()
    model = tiny_models.train_sentiment_model(tok)
    for text, label, word in [
        ("i thought the story was superb overall", 1, "superb"),
        ("honestly the acting felt dreadful to me", 0, "dreadful"),
    ]:
        res = attribute_text(model, tok, text, n_steps=64)
        assert res.target == label
        assert res.tokens[0] == "[CLS]" and res.tokens[-1] == "[SEP]"
        assert res.tokens[int(np.argmax(res.values))] == word  # the word that decides, and it helps
        assert res.relative_delta < 0.05
    flipped = attribute_text(model, tok, "the film was great", target=0)
    assert flipped.values[flipped.tokens.index("great")] < 0  # evidence against class 0
    with pytest.raises(ValueError, match="non-empty string"):
        attribute_text(model, tok, "  ")
    with pytest.raises(ValueError, match="out of range"):
        attribute_text(model, tok, "the film was great", target=2)
    with pytest.raises(ValueError, match="Available layer names: embed, head"):
        attribute_text(model, tok, "the film was great", layer="embeddings")


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


def test_tokens_html_escapes_and_colours():
    out = iplot.tokens_html(["<script>", "good", "bad"], np.array([0.0, 2.0, -2.0]))
    assert "&lt;script&gt;" in out and "<script>" not in out
    assert "rgb(102,191,102)" in out  # full support: green
    assert "rgb(255,102,102)" in out  # full opposition: red
    assert iplot.normalise_heatmap(np.zeros((3, 3))).max() == 0
