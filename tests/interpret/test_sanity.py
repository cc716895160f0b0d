"""dlnb.interpret.sanity: the randomisation sanity check (Adebayo et al.) and agreement between methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.interpret.attribution import attribute
from dlnb.interpret.sanity import compare_methods, sanity_check, spearman


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
