"""dlnb.widgets: the explorers update when a control changes, expose their state, and go static headless."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.interpret.widgets import BUSY, PREDICTED, ImageAttributionExplorer, TextAttributionView
from tests.assets import tiny_models


@pytest.fixture(scope="module")
def explorer():
    model = tiny_models.train_patch_cnn()
    x, _, _ = tiny_models.patch_images(6, seed=5)
    return ImageAttributionExplorer(model, x, class_names=["empty", "patch"], n_steps=8)


def test_initial_state_and_render(explorer):
    explorer.set(
        sample=0, method="integrated_gradients", target=PREDICTED, baseline="zero", steps=8
    )
    assert explorer.state == {
        "sample": 0,
        "method": "integrated_gradients",
        "target": PREDICTED,
        "baseline": "zero",
        "steps": 8,
    }
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert "top predictions" in explorer.predictions.value and "patch" in explorer.predictions.value
    assert "IG convergence delta" in explorer.status.value
    assert explorer.result.method == "integrated_gradients"


def test_changing_a_control_updates_the_output(explorer):
    explorer.set(sample=1, method="saliency")
    before_png, before = explorer.image.value, explorer.result
    explorer.controls["method"].value = "gradcam"  # what a click in the front end does
    assert explorer.result.method == "gradcam"
    assert explorer.image.value != before_png
    explorer.controls["target"].value = 0
    assert explorer.result.targets.tolist() == [0]
    explorer.controls["sample"].value = 3
    assert explorer.image.value != before_png
    explorer.set(sample=1, method="saliency", target=PREDICTED)
    assert explorer.result is before  # cached, not recomputed
    explorer.set(sample=1, method="integrated_gradients", baseline="blur", steps=16)
    blur = explorer.result
    explorer.set(baseline="uniform")
    assert not np.allclose(blur.values, explorer.result.values)


def test_a_change_shows_a_busy_state_and_disables_the_controls_while_it_computes(explorer):
    # Issue 16 item 2: for seconds after a change the old picture and status stayed, with no sign
    # of work, and further clicks queued behind it.
    explorer.set(sample=0, method="saliency", target=PREDICTED)
    seen = []
    real_update = explorer.update

    def spy() -> None:
        seen.append((explorer.status.value, [c.disabled for c in explorer.controls.values()]))
        real_update()

    explorer.update = spy
    try:
        explorer.controls["method"].value = "gradcam"  # what a click in the front end does
    finally:
        del explorer.update
    assert "computing" in BUSY and seen == [(BUSY, [True] * len(explorer.controls))]
    assert not any(c.disabled for c in explorer.controls.values())
    assert explorer.status.value.startswith("gradcam in")


def test_named_baselines_come_first_and_digit_targets_read_once():
    # Issue 16 item 7: the digit explorer lacked the black baseline; its targets read "7: 7".
    model = tiny_models.PatchCNN()
    x, _, _ = tiny_models.patch_images(2)
    ex = ImageAttributionExplorer(
        model, x, class_names=["0", "patch"], baselines={"black": -1.0}, n_steps=8
    )
    assert ex.controls["baseline"].options == ("black", "zero", "blur", "uniform")
    assert ex.state["baseline"] == "black"
    labels = [label for label, _ in ex.controls["target"].options]
    assert labels == ["predicted class", "0", "1: patch"]
    ex.set(method="integrated_gradients")
    black = ex.result.values
    ex.set(baseline="zero")
    assert not np.allclose(black, ex.result.values)


def test_set_rejects_unknown_controls(explorer):
    with pytest.raises(ValueError, match=r"Unknown control\(s\) \['colour'\]"):
        explorer.set(colour="red")


def test_an_error_in_a_callback_is_shown_not_raised():
    model = tiny_models.PatchCNN()
    x, _, _ = tiny_models.patch_images(2)
    ex = ImageAttributionExplorer(model, x, layer="conv9", methods=("saliency", "gradcam"))
    ex.controls["method"].value = "gradcam"
    assert "Layer &#x27;conv9&#x27; does not exist" in ex.status.value
    assert "conv1, conv2, head" in ex.status.value
    with pytest.raises(ValueError, match="does not exist"):
        ex.set(method="gradcam")  # from Python the error is raised


def test_bad_constructor_inputs():
    model = tiny_models.PatchCNN()
    x, _, _ = tiny_models.patch_images(2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ImageAttributionExplorer(model, x[0])
    with pytest.raises(ValueError, match="Got 1 images for 2 inputs"):
        ImageAttributionExplorer(model, x, images=[np.zeros((16, 16))])


def test_display_is_static_when_headless(explorer, monkeypatch):
    from matplotlib.figure import Figure

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setenv("DLNB_HEADLESS", "1")
    explorer._ipython_display_()
    assert isinstance(shown[-1], Figure)
    assert len(shown[-1].axes) == 4  # image, overlay and its colorbar, top predictions
    monkeypatch.setattr("dlnb.runtime.is_headless", lambda: False)
    explorer._ipython_display_()
    assert shown[-1] is explorer.widget


@pytest.mark.slow
def test_text_view(monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = tiny_models.minilm_tokenizer()
    model = tiny_models.train_sentiment_model(tok)
    texts = ["the film was wonderful", "the film was boring"]
    view = TextAttributionView(model, tok, texts, ["negative", "positive"], n_steps=16)
    assert "wonderful" in view.tokens.value and "predicted <b>positive</b>" in view.status.value
    view.examples.value = texts[1]  # picking an example fills the text box and updates
    assert view.state["text"] == texts[1]
    assert "boring" in view.tokens.value and "predicted <b>negative</b>" in view.status.value
    view.controls["text"].value = "a <b>superb</b> film"
    assert view.examples.value is None, "typing your own text clears the example picker"
    assert "&lt;" in view.tokens.value and "<b>" not in view.tokens.value  # tokens are escaped
    view.set(target=0)
    assert view.result.target == 0 and "explaining <b>negative</b>" in view.status.value
    fig = view.figure()
    assert isinstance(fig, Figure) and "negative" in fig.axes[0].get_title(loc="left")
    with pytest.raises(ValueError, match="at least one text"):
        TextAttributionView(model, tok, [], ["negative", "positive"])


def test_the_explorer_opens_on_a_method_that_passed_and_labels_the_others():
    from dlnb.interpret.sanity import SanityResult

    model = tiny_models.train_patch_cnn()
    x, _, _ = tiny_models.patch_images(2, seed=5)
    sanity = {
        "integrated_gradients": SanityResult(
            "integrated_gradients", "cascading", ["all"], [0.62], 0.5, [0.6, 0.62, 0.64, 0.62]
        ),
        "gradcam": SanityResult("gradcam", "cascading", ["all"], [0.05], 0.5, [0.04, 0.06, 0.05]),
    }
    ex = ImageAttributionExplorer(
        model, x, methods=("integrated_gradients", "saliency", "gradcam"), sanity=sanity, n_steps=8
    )
    assert ex.state["method"] == "gradcam" and ex.result.method == "gradcam"
    labels = [label for label, _ in ex.controls["method"].options]
    assert labels[0].startswith("gradcam (sanity check passed")
    assert labels[1] == "saliency (not sanity-checked)"
    assert labels[2].startswith("integrated_gradients (sanity check FAILED (0.62): not evidence")
    assert "sanity check passed" in ex.status.value
    ex.set(method="integrated_gradients")
    assert "FAILED" in ex.status.value
    overlay = ex.figure().axes[1]
    assert "FAILED" in overlay.get_title() and overlay.title.get_color() == "tab:red"


def test_text_view_names_plain_strings_shows_its_card_and_its_check(monkeypatch):
    from matplotlib.figure import Figure

    from dlnb.interpret.sanity import SanityResult

    tok = tiny_models.minilm_tokenizer()
    model = tiny_models.train_sentiment_model(tok)
    names = list(np.array(["negative", "positive"]))  # numpy strings, as a dataset gives them
    view = TextAttributionView(
        model, tok, ["the film was great"], names, n_steps=8, about="**The model:** a test."
    )
    assert "np.str_" not in view.figure().axes[0].get_title(loc="left")
    assert "'positive'" in view.figure().axes[0].get_title(loc="left")
    assert "not sanity-checked" in view.status.value
    checked = SanityResult(
        "layer_integrated_gradients", "cascading", ["all"], [0.1], 0.5, [0.1, 0.1]
    )
    view.sanity = checked
    view.update()
    assert "sanity check passed" in view.status.value
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setenv("DLNB_HEADLESS", "1")
    view._ipython_display_()
    assert "**The model:** a test." in shown[0].data and isinstance(shown[1], Figure)
    assert len(view.card.outputs) == 1  # the same card inside the live widget
