"""dlnb.interpret.attribution: attributions find what a model with a known answer uses, and bad inputs fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlnb.interpret.attribution import (
    METHODS,
    attribute,
    attribute_text,
    find_layer,
    last_conv_layer,
    make_baseline,
    merge_words,
    relative_delta,
)
from tests.assets import tiny_models


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


def test_relative_delta_is_the_share_of_the_gap_left_unexplained():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
        model.bias.zero_()
    x = torch.tensor([[1.0, 1.0, 0.0], [4.0, 0.5, 0.0]])
    base = torch.zeros_like(x)  # gaps f(x) - f(base): class 1 -> 2.0, class 0 -> 4.0
    rel = relative_delta(model, x, base, torch.tensor([1, 0]), torch.tensor([-0.5, 0.2]))
    np.testing.assert_allclose(rel, [0.25, 0.05])
    np.testing.assert_allclose(
        relative_delta(model, x, base, 1, torch.tensor([1.0, 1.0])), [0.5, 1]
    )


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


@pytest.mark.slow
def test_text_attribution_finds_the_sentiment_word(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = tiny_models.minilm_tokenizer()
    model = tiny_models.train_sentiment_model(tok)
    for text, label, word in [
        ("i thought the story was superb overall", 1, "superb"),
        ("honestly the acting felt dreadful to me", 0, "dreadful"),
    ]:
        res = attribute_text(model, tok, text, n_steps=64, warn=False)  # notes: tested below
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


def test_word_pieces_merge_into_words():
    tokens = ["[CLS]", "driver", "##less", "cars", "[SEP]"]
    values = np.array([9.0, 0.25, 0.5, -1.0, 9.0])
    special = np.array([1, 0, 0, 0, 1], bool)
    words, sums = merge_words(tokens, values, special=special)  # by the "##" continuations
    assert words == ["driverless", "cars"] and sums.tolist() == [0.75, -1.0]
    words, sums = merge_words(tokens, values, [None, 0, 0, 1, None])  # by word_ids
    assert words == ["driverless", "cars"] and sums.tolist() == [0.75, -1.0]


class _SumOfEmbeddings(nn.Module):
    """Logits = the sum of the token embeddings: IG is exact; [PAD] favours class 0, [MASK] is 0."""

    def __init__(self, vocab_size: int, pad_id: int, mask_id: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 2)
        nn.init.zeros_(self.embed.weight)
        with torch.no_grad():
            self.embed.weight[:, 0] = 0.1  # every word: a little evidence for class 0
            self.embed.weight[pad_id] = torch.tensor([2.0, 0.0])
            self.embed.weight[mask_id] = 0.0

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return (self.embed(input_ids) * attention_mask[..., None]).sum(1)


def test_a_pad_reference_that_scores_the_class_is_noted_and_mask_is_offered(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = tiny_models.minilm_tokenizer()
    model = _SumOfEmbeddings(len(tok), tok.pad_token_id, tok.mask_token_id)
    with pytest.warns(UserWarning, match="Try reference='mask'"):
        padded = attribute_text(model, tok, "the driverless cars")
    assert padded.target == 0 and padded.reference == "pad" and padded.note
    assert padded.values.sum() == pytest.approx(4 * (0.1 - 2.0), abs=1e-4)  # f(x) - f(all [PAD])
    assert padded.words == ["the", "driverless", "cars"]
    assert padded.word_values == pytest.approx([-1.9, -3.8, -1.9], abs=1e-4)  # 2 pieces
    masked = attribute_text(model, tok, "the driverless cars", reference="mask")
    assert masked.note == "" and masked.values.sum() == pytest.approx(0.4, abs=1e-4)
    assert masked.word_values == pytest.approx([0.1, 0.2, 0.1], abs=1e-4)
    with pytest.raises(ValueError, match="not one of"):
        attribute_text(model, tok, "the cars", reference="zero")


def test_the_note_compares_the_reference_margin_with_the_text_margin():
    from dlnb.interpret.attribution import _reference_note

    held = _reference_note(torch.tensor([0.0, 2.33]), torch.tensor([0.0, 2.11]), 1, "pad")
    assert "alone puts class 1 2.11 above the next class" in held and "Try reference='mask'" in held
    assert _reference_note(torch.tensor([0.0, 2.33]), torch.tensor([0.0, 0.5]), 1, "pad") == ""
    assert _reference_note(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]), 0, "mask") == ""
    assert "Try reference='unk'" in _reference_note(
        torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.9]), 1, "mask"
    )
