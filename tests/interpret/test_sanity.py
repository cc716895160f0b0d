"""dlnb.interpret.sanity: the randomisation sanity check (Adebayo et al.) and agreement between methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.interpret.attribution import attribute
from dlnb.interpret.sanity import compare_methods, sanity_check, spearman


def test_sanity_check_passes_for_the_model_and_fails_for_an_edge_detector(patch_model, patch_data):
    x, _ = patch_data
    result = sanity_check(patch_model, x, target=1, method="gradcam", mode="full")
    assert result.steps == ["all layers"] and len(result.spearman) == 1
    assert result.passed, result.spearman  # the map depends on the learned weights
    mean, low, high = result.interval()  # over the 16 images
    assert low < mean < high < result.bound and len(result.per_sample) == len(x)

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


def _result(per_sample, bound=0.5, mode="cascading"):
    from dlnb.interpret.sanity import SanityResult

    return SanityResult("m", mode, ["all layers"], [float(np.mean(per_sample))], bound, per_sample)


def test_the_verdict_comes_from_the_interval_over_samples_not_the_mean():
    assert _result([0.1, 0.12, 0.08, 0.11]).verdict == "passed"
    assert _result([0.62, 0.65, 0.6, 0.63]).verdict == "failed"
    straddles = _result([0.2, 0.7, 0.3, 0.6])  # mean 0.45 < 0.5, but the interval reaches above
    assert abs(straddles.final) < 0.5 and straddles.verdict == "borderline"
    assert not straddles.passed and straddles.label().startswith("borderline")
    assert _result([-0.7, -0.65, -0.72]).verdict == "failed"  # anti-correlated maps fail too
    single = _result([0.3])  # one sample: no interval, its value decides
    assert single.verdict == "passed" and single.interval()[1] == -np.inf
    assert _result([0.55]).label() == "FAILED (0.55)"


def test_a_precomputed_reference_is_used_instead_of_recomputing(patch_model, patch_data):
    x, _ = patch_data
    plain = sanity_check(patch_model, x[:4], target=1, method="saliency", mode="full")
    trained = attribute(patch_model, x[:4], 1, "saliency")
    reused = sanity_check(
        patch_model, x[:4], target=1, method="saliency", mode="full", reference=trained
    )
    assert reused.spearman == pytest.approx(plain.spearman)
    assert len(reused.per_sample) == 4
    flat = np.ones((4, 16, 16))  # a reference that is not the model's: nothing correlates
    assert sanity_check(
        patch_model, x[:4], target=1, method="saliency", mode="full", reference=flat
    ).spearman == [0.0]
    with pytest.raises(ValueError, match="holds 2 maps for 4 inputs"):
        sanity_check(patch_model, x[:4], method="saliency", reference=flat[:2])


@pytest.mark.slow
def test_text_attributions_of_a_trained_model_pass_the_check():
    from dlnb.interpret.sanity import text_sanity_check
    from tests.assets import tiny_models

    tok = tiny_models.minilm_tokenizer()
    model = tiny_models.train_sentiment_model(tok)
    texts = tiny_models.sentiment_texts()[0][::5]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = text_sanity_check(model, tok, texts, n_steps=8, n_groups=2)
    assert result.method == "layer_integrated_gradients" and result.steps == ["head", "embed"]
    assert len(result.per_sample) == len(texts) and result.verdict == "passed", result
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])  # the model itself is not randomised
    with pytest.raises(ValueError, match="at least one text"):
        text_sanity_check(model, tok, [])


def test_record_keeps_the_sign_and_writes_no_bounds_without_an_interval(monkeypatch):
    from dlnb.interpret import sanity as module

    seen: dict[str, object] = {}
    monkeypatch.setattr(module, "record", lambda name, value: seen.__setitem__(name, value))
    _result([-0.068]).record("one")
    assert seen == {"one": pytest.approx(-0.068), "one_verdict": "passed"}
    assert _result([-0.068]).label() == "passed (-0.07)"
    seen.clear()
    _result([0.1, 0.12, 0.08, 0.11]).record("many")
    assert seen["many"] == pytest.approx(0.1025)
    assert seen["many_low"] < 0.1025 < seen["many_high"] and seen["many_verdict"] == "passed"
