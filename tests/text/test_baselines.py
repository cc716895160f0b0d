"""Baselines: settings tuned on folds, frozen-encoder embeddings and probe, the small scratch encoder."""

import numpy as np
import pytest
import torch

from dlnb.text import baselines as bl
from dlnb.text import loaders as ld
from dlnb.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")
LABELS = ("negative", "positive")
GOOD = ["what a lovely warm day", "lovely food and warm people", "warm lovely sunny"]
BAD = ["cold grey miserable rain", "miserable cold service", "grey cold and miserable"]


@pytest.fixture
def tiny_encoder(tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def test_tune_on_folds_picks_the_value_that_scores_best_on_held_out_folds():
    x = np.arange(30)
    y = np.repeat([0, 1, 2], 10)
    seen = []

    def method(train, valid, value):
        seen.append((set(train[0].tolist()), set(valid[0].tolist())))
        return {"accuracy": {1: 0.2, 10: 0.9, 100: 0.9}[value]}

    best, means = bl.tune_on_folds(method, (x, y), [1, 10, 100], folds=3)
    assert best == 10 and means == pytest.approx({1: 0.2, 10: 0.9, 100: 0.9})  # ties: the first
    assert all(not a & b and len(b) == 10 for a, b in seen)  # folds are disjoint
    with pytest.raises(ValueError, match="at least folds=3"):
        bl.tune_on_folds(method, (x[:12], y[:12]), [1], folds=3)  # 2 of class 1


def test_tuned_tfidf_prefers_weak_regularisation_on_a_separable_task():
    train = (GOOD * 4 + BAD * 2, np.repeat([1, 0], [12, 6]))  # a heavy penalty answers the majority

    def run(a, b, C):
        return bl.tfidf_classifier(a, b, label_names=LABELS, C=C)

    best, means = bl.tune_on_folds(run, train, [1e-4, 10.0])
    assert best == 10.0 and means[10.0] == 1.0 and means[1e-4] < 0.7


def test_sentence_embeddings_mean_pool_real_tokens_only(tokenizer, tiny_encoder):
    texts = ["short", "a much longer text with many more words in it"]
    both = bl.sentence_embeddings(texts, tokenizer, tiny_encoder, device="cpu")
    alone = bl.sentence_embeddings(texts[:1], tokenizer, tiny_encoder, device="cpu")
    assert both.shape == (2, 16)
    np.testing.assert_allclose(both[0], alone[0], atol=1e-5)  # padding does not leak into the mean
    ids = torch.tensor([ld.tokenize(tokenizer, texts[:1])[0]])
    expected = tiny_encoder(input_ids=ids).last_hidden_state.mean(1)[0].detach().numpy()
    np.testing.assert_allclose(alone[0], expected, atol=1e-5)


def test_probe_classifier_learns_frozen_features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 5)) + 3 * np.eye(5)[y]
    result = bl.probe_classifier((x[::2], y[::2]), (x[1::2], y[1::2]), C=1.0)
    assert result["accuracy"] >= 0.9 and result["predictions"].shape == (30,)
    noise = rng.normal(size=(60, 5))  # features that hold nothing about the labels
    assert bl.probe_classifier((noise[::2], y[::2]), (noise[1::2], y[1::2]))["accuracy"] < 0.6


def test_load_encoder_gives_minilm_without_a_head_and_no_loading_bar(capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    encoder = bl.load_encoder()
    assert encoder.config.hidden_size == 384 and not encoder.training
    assert not hasattr(encoder, "classifier")
    assert "Loading weights" not in capfd.readouterr().err  # transformers' bar stayed silent
    assert hf_logging.is_progress_bar_enabled()  # and the user's setting is back


@pytest.mark.slow
def test_scratch_encoder_learns_a_separable_task(tokenizer):
    train = (GOOD * 4 + BAD * 4, ["positive"] * 12 + ["negative"] * 12)
    config = TrainConfig(epochs=30, lr=3e-3, progress=False, device="cpu")
    result = bl.scratch_classifier(
        train, train, tokenizer=tokenizer, label_names=LABELS, config=config, d_model=16
    )
    assert result["accuracy"] == 1.0
    assert result["model"].config.vocab_size == len(tokenizer)


def test_probe_drops_constant_features_and_its_head_gives_the_same_probabilities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    x[:, 2] = 1e-33 * rng.normal(size=40)  # a dead dimension, as mean-pooled MiniLM has
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    result = bl.probe_classifier((x, y), (x, y), C=1.0)
    assert result["model"][0].get_support().tolist() == [True, True, False, True, True, True]
    head = bl.probe_head(result["model"])
    assert head.weight[:, 2].abs().max() == 0 and torch.isfinite(head.weight).all()
    with torch.no_grad():
        probs = torch.softmax(head(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(probs, result["model"].predict_proba(x), atol=1e-5)


def test_bag_of_embeddings_learns_a_separable_task_and_masks_padding(tokenizer):
    train = (GOOD * 4 + BAD * 4, ["positive"] * 12 + ["negative"] * 12)
    config = TrainConfig(epochs=30, lr=3e-2, progress=False, device="cpu")
    result = bl.bag_classifier(
        train, train, tokenizer=tokenizer, label_names=LABELS, config=config, dim=8
    )
    assert result["accuracy"] == 1.0 and result["train_accuracy"] == 1.0
    model = result["model"].eval()
    ids = torch.tensor([[101, 2000, 102, 0, 0]])
    padded = model(ids, torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(padded, model(ids[:, :3], torch.ones(1, 3, dtype=torch.long)))
