"""dlnb.interpret.demo: a sentence probe that is the model it reports on, and its report card."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.interpret.demo import (
    SentenceProbe,
    _folded_head,
    demo_report,
    fit_sentence_probe,
    predict_texts,
    sentiment_tweets,
    tweet_tags,
)
from tests.assets import tiny_models

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def tiny_encoder():
    """A one-layer BERT with 8 hidden units on MiniLM's vocabulary (random weights, seeded)."""
    from transformers import BertConfig, BertModel

    tok = tiny_models.minilm_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
    )
    return tok, BertModel(config).eval()


def test_the_folded_head_gives_the_pipeline_probabilities():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(200, 5))
    for y in ((x[:, 0] + x[:, 1] > 4).astype(int), np.digitize(x[:, 2], [0.0, 3.0])):
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(max_iter=1000).fit(scaler.transform(x), y)
        head = _folded_head(scaler.mean_, scaler.scale_, clf.coef_, clf.intercept_)
        with torch.no_grad():
            probs = head(torch.as_tensor(x, dtype=torch.float32)).softmax(1).numpy()
        np.testing.assert_allclose(probs, clf.predict_proba(scaler.transform(x)), atol=1e-4)
    logits = head.weight.detach().numpy()
    assert logits.shape == (3, 5)
    two = _folded_head(np.zeros(2), np.ones(2), np.array([[2.0, -1.0]]), np.array([0.5]))
    np.testing.assert_allclose(two.weight.detach(), [[-1.0, 0.5], [1.0, -0.5]])  # +-s/2
    np.testing.assert_allclose(two.bias.detach(), [-0.25, 0.25])


def test_the_probe_module_predicts_what_the_fitted_regression_does(tiny_encoder):
    from dlnb.text import sentence_embeddings

    tok, encoder = tiny_encoder
    texts, labels = tiny_models.sentiment_texts()
    fit = fit_sentence_probe(texts, labels, tok, encoder, grid=(1.0, 100.0))
    assert isinstance(fit.model, SentenceProbe) and fit.C in (1.0, 100.0)
    assert set(fit.fold_scores) == {1.0, 100.0} and fit.model.encoder.pooler is None
    probs = predict_texts(fit.model, tok, texts, batch_size=7)
    assert probs.shape == (len(texts), 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    features = torch.as_tensor(sentence_embeddings(texts, tok, encoder))
    with torch.no_grad():
        direct = fit.model.head(features).softmax(1).numpy()
    np.testing.assert_allclose(probs, direct, atol=1e-5)  # the module is mean pooling + head
    assert fit.model.get_input_embeddings() is encoder.get_input_embeddings()


def test_the_report_says_how_good_the_model_is_and_what_it_learned_from():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 300)
    good = np.eye(2)[np.where(rng.random(600) < 0.85, y, 1 - y)]
    tags = [("@united", 40), ("#coachella2015", 30)]
    report = demo_report(
        y, good, np.repeat([0, 1], 1000), ("negative", "positive"), name="a probe", tags=tags
    )
    card = report.markdown()
    assert report.learned and report.majority == 0.5 and report.test_size == 600
    assert f"right {report.accuracy:.1%} of the time" in card and "95 % CI" in card
    assert "The probe is better than always answering the majority class" in card
    assert "Recall per class" in card and "negative " in card and "misses many" not in card
    assert "1,000 negative, 1,000 positive English tweets" in card and "@united" in card
    assert "did not beat" not in card
    chance = np.eye(2)[rng.integers(0, 2, 600)]
    weak = demo_report(
        y, chance, np.repeat([0, 1], 1000), ("negative", "positive"), name="a probe", tags=tags
    )
    assert not weak.learned and "did not beat the majority class" in weak.markdown()
    lopsided = np.eye(2)[np.where(y == 1, rng.random(600) < 0.5, 0).astype(int)]
    card = demo_report(
        y, lopsided, np.repeat([0, 1], 1000), ("negative", "positive"), name="a probe", tags=tags
    ).markdown()
    assert "It misses many positive tweets" in card


def test_tweet_tags_count_mentions_and_hashtags():
    tags = tweet_tags(["@United late again #fail", "@united thanks", "#Fail x @a"], k=2)
    assert tags == [("@united", 2), ("#fail", 2)]


def test_sentiment_tweets_are_balanced_and_binary():
    data = sentiment_tweets(40, 20, seed=1)
    assert data["label_names"] == ("negative", "positive")
    (train, y_train), (test, y_test) = data["train"], data["test"]
    assert len(train) == 40 and np.bincount(y_train).tolist() == [20, 20]
    assert len(test) == 20 and np.bincount(y_test).tolist() == [10, 10]
    assert not set(train) & set(test)
    assert sentiment_tweets(40, 20, seed=1)["train"][0] == train  # seeded
    with pytest.raises(ValueError, match="only"):
        sentiment_tweets(10**6, 20)


def test_out_of_domain_scores_go_on_the_card(tiny_encoder):
    from dlnb.interpret.demo import OutOfDomain, out_of_domain

    tok, encoder = tiny_encoder
    texts, labels = tiny_models.sentiment_texts()
    fit = fit_sentence_probe(texts, labels, tok, encoder, grid=(1.0,))
    other = out_of_domain(fit.model, tok, texts[:10], labels[:10], "film sentences")
    predicted = predict_texts(fit.model, tok, texts[:10]).argmax(1)
    assert other.n == 10 and other.accuracy == pytest.approx(np.mean(predicted == labels[:10]))
    y = np.repeat([0, 1], 50)
    report = demo_report(
        y,
        np.eye(2)[y],
        y,
        ("negative", "positive"),
        name="m",
        tags=[],
        elsewhere=[OutOfDomain("reviews", 0.625, 0.54, 0.71, 120)],
    )
    assert "Out of its domain, on 120 reviews, it is right 62.5% of the time" in report.markdown()


def test_example_picks_take_a_clear_right_answer_per_class_then_a_mistake():
    from dlnb.interpret.demo import example_picks

    y = np.array([0, 0, 1, 1, 0, 1])
    p1 = np.array([0.45, 0.1, 0.55, 0.95, 0.2, 0.3])  # probability of class 1
    probabilities = np.stack([1 - p1, p1], axis=1)
    # class 0: #0 (0.55) is right but unsure, #1 (0.9) is the first clear one; class 1: #2 (0.55)
    # unsure, #3 (0.95) clear; the first mistake is #5 (true 1, predicted 0)
    assert example_picks(y, probabilities) == [1, 3, 5]
    unsure = np.stack([1 - np.full(6, 0.4), np.full(6, 0.4)], axis=1)  # always 0 at 0.6
    assert example_picks(y, unsure) == [0, 2]  # the most confident right one, then the mistake
