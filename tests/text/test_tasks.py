"""Text tasks: the mojibake rule, a balanced binary task without repeats, the data's description."""

import numpy as np
import pytest

from dlnb.text import tasks

STORED_APOSTROPHE = "I look at Google\xd5\xa2_\x8a\xce_\x86\xa2s driverless cars"


@pytest.mark.parametrize(
    ("stored", "repaired"),
    [
        (STORED_APOSTROPHE, "I look at Google's driverless cars"),  # inside a contraction
        (
            "@VirginAmerica can\x8a\x97\xc8t access your site",
            "@VirginAmerica can't access your site",
        ),
        ("made me broke _\xf4\xcd\x9f", "made me broke"),  # an emoji whose bytes were lost
        ("\xe4\xf3\xecquoted\xe4\xf3\x9d text", "quoted text"),  # curly quotes: spaces
        ("@user_name &amp; friends", "@user_name & friends"),  # plain underscores stay
        ("line one\r\rline   two", "line one line two"),
    ],
)
def test_repair_mojibake_follows_the_documented_rule(stored, repaired):
    assert tasks.repair_mojibake(stored) == repaired


def test_repair_mojibake_is_linear_on_long_garbled_runs():
    """A long run followed by a contraction-like letter must not backtrack exponentially."""
    stored = "word" + "\xd5\x8d\x81\xf4_" * 2000 + "x"
    assert tasks.repair_mojibake(stored) == "word x"


def _arrays():
    return {
        "text_train": np.array(
            ["good day", "bad day", "meh", "good day", "great\xe4\xf3_", "awful"]
        ),
        "y_train": np.array([2, 0, 1, 2, 2, 0]),
        "text_test": np.array(["good day", "nice", "terrible", "fine", "bad", "ok", "lovely"]),
        "y_test": np.array([2, 2, 0, 1, 0, 1, 2]),
        "label_names": np.array(["negative", "neutral", "positive"]),
        "confidence_test": np.array([1.0, 0.5, 1.0, 1.0, np.nan, 1.0, 1.0]),
    }


@pytest.fixture
def fake_tweets(monkeypatch):
    monkeypatch.setattr(tasks, "load", lambda name: _arrays())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_sentiment_task_is_binary_balanced_and_without_repeats(fake_tweets):
    task = tasks.sentiment_task("auto", seed=0)
    assert task.name == "tweets" and task.label_names == ("negative", "positive")
    assert task.train_texts == ["good day", "bad day", "great", "awful"]  # repaired, one copy
    assert task.train_y.tolist() == [1, 0, 1, 0]
    assert not set(task.test_texts) & set(task.train_texts)  # "good day" left the test split
    assert np.bincount(task.test_y).tolist() == [2, 2] and task.majority == 0.5
    assert task.test_pool == 4 and task.duplicates == 2 and task.repaired == 1
    assert task.dropped_classes == ("neutral",)
    text = task.describe()
    assert "neutral left out" in text and "4 texts, 2 of each class" in text
    assert "1 texts had mojibake" in text and "HF_HUB_OFFLINE=0" in text


def test_sentiment_task_subset_and_test_pair_texts_with_labels(fake_tweets):
    task = tasks.sentiment_task("tweets", test_per_class=1, seed=3)
    texts, y = task.subset([2, 1])
    assert texts == ["great", "bad day"] and y.tolist() == [1, 0]
    assert len(task.test[0]) == 2 and np.bincount(task.test[1]).tolist() == [1, 1]
    assert task.test_confidence.shape == (2,)


def test_sentiment_task_refuses_unknown_classes_and_oversized_test_sets(fake_tweets):
    with pytest.raises(ValueError, match="classes must be"):
        tasks.sentiment_task("tweets", classes=("negative", "sarcastic"))
    with pytest.raises(ValueError, match="smallest class has 2"):
        tasks.sentiment_task("tweets", test_per_class=3)


def test_an_unavailable_dataset_falls_back_to_the_tweets_and_says_so(monkeypatch):
    def load(name):
        if name == "sst2":
            raise tasks.DatasetUnavailable("Dataset 'sst2' could not be loaded:\n- no network")
        return _arrays()

    monkeypatch.setattr(tasks, "load", load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    task = tasks.sentiment_task("auto")
    assert task.name == "tweets" and "sst2 is not available (no network)" in task.source


def test_mojibake_examples_show_stored_and_repaired_text(fake_tweets):
    frame = tasks.mojibake_examples(3)
    assert frame.columns.tolist() == ["label", "as stored", "repaired"]
    assert frame["repaired"].tolist() == ["great"] and frame["label"].tolist() == ["positive"]
