"""Texts to batches: checked texts and labels, tokens, per-batch padding, length-bucketed batches."""

import warnings

import numpy as np
import pytest
import torch

from dlnb.text import loaders as text

LABELS = ("negative", "positive")


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


def test_a_single_string_or_a_swapped_call_is_a_clear_error(tokenizer):
    with pytest.raises(TypeError, match=r"wrap a single text as \[text\]"):
        text.check_texts("one text")
    with pytest.raises(TypeError, match="takes the tokenizer first"):
        text.text_loaders((["a"], [0]), tokenizer, label_names=LABELS)
    with pytest.raises(TypeError, match="data.train"):
        text.text_loaders(tokenizer, ["a", "b"], label_names=LABELS)


def test_unlabelled_texts_batch_with_placeholder_targets(tokenizer):
    loaders = text.text_loaders(
        tokenizer, (["new text", "another new one"], None), label_names=LABELS, bucket=False
    )
    ((x, y),) = list(loaders.train)
    assert x["input_ids"].shape[0] == 2 and y.tolist() == [-1, -1]


def test_length_buckets_cover_every_text_once_in_batches_of_similar_length():
    lengths = np.random.default_rng(0).integers(5, 60, size=400)
    sampler = text.LengthBuckets(lengths, 16, torch.Generator().manual_seed(1), pool=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 25
    assert sorted(sum(batches, [])) == list(range(400))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    shuffled = np.random.default_rng(0).permutation(400).reshape(25, 16)
    assert spread < np.mean([np.ptp(lengths[b]) for b in shuffled]) / 4
    again = list(text.LengthBuckets(lengths, 16, torch.Generator().manual_seed(1), pool=10))
    other = list(text.LengthBuckets(lengths, 16, torch.Generator().manual_seed(2), pool=10))
    assert again == batches and other != batches
    with pytest.raises(ValueError, match="at least 1"):
        text.LengthBuckets(lengths, 0)


def test_pad_fraction_counts_the_padded_slots():
    # two short and two long texts: bucketed batches pair them and pad nothing
    pads = text.pad_fraction([1, 1, 9, 9], batch_size=2, seed=0)
    assert pads["bucketed"] == 0.0
    order = np.random.default_rng(0).permutation(4)
    lengths = np.array([1, 1, 9, 9])
    slots = sum(2 * lengths[order[i : i + 2]].max() for i in (0, 2))
    assert pads["random"] == pytest.approx(1 - 20 / slots)
    with pytest.raises(ValueError, match="token count"):
        text.pad_fraction([3, 0])


def test_training_batches_are_bucketed_and_replay_with_the_seed(tokenizer):
    texts = [("word " * (i % 20 + 1)).strip() for i in range(96)]
    labels = [i % 2 for i in range(96)]

    def widths(loader):
        return sum(x["input_ids"].numel() for x, _ in loader)

    bucketed = text.text_loaders(tokenizer, (texts, labels), label_names=LABELS, seed=4)
    plain = text.text_loaders(tokenizer, (texts, labels), label_names=LABELS, seed=4, bucket=False)
    again = text.text_loaders(tokenizer, (texts, labels), label_names=LABELS, seed=4)
    first = [y.tolist() for _, y in bucketed.train]
    assert [y.tolist() for _, y in again.train] == first
    assert widths(bucketed.train) < 0.75 * widths(plain.train)
    second = [y.tolist() for _, y in again.train]  # the next epoch: other batches
    again.train.generator.manual_seed(4)  # fit reseeds each epoch like this
    assert second != first and [y.tolist() for _, y in again.train] == first
    assert sorted(sum(first, [])) == sorted(labels)


def test_sort_eval_batches_the_test_split_shortest_first(tokenizer):
    texts = ["a b c d e f", "a", "a b c"]
    loaders = text.text_loaders(
        tokenizer,
        (texts, [0, 1, 0]),
        test=(texts, [0, 1, 0]),
        label_names=LABELS,
        batch_size=1,
        sort_eval=True,
    )
    assert [y.item() for _, y in loaders.test] == [1, 0, 0]
    assert [x["input_ids"].shape[1] for x, _ in loaders.test] == [3, 5, 8]
