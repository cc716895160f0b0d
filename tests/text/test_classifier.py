"""Your own texts end to end: raw file -> fit_text -> save -> load -> predict on new strings."""

import json

import pandas as pd
import pytest
import torch

from dlnb.text import classifier, reading
from dlnb.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")
GOOD = ["what a lovely warm day", "lovely food and warm people", "warm, lovely and sunny"]
BAD = ["cold grey miserable rain", "miserable cold service", "grey, cold and miserable"]


@pytest.fixture
def tiny_pretrained(tiny_checkpoint):
    """The one-layer BERT with random weights saved as if pretrained: fit_text loads it fast."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(tiny_checkpoint)).save_pretrained(
        tiny_checkpoint
    )
    return tiny_checkpoint


@pytest.mark.slow
def test_tsv_to_saved_minilm_to_predictions(tmp_path):
    rows = [(t, "pos") for t in GOOD * 2] + [(t, "neg") for t in BAD * 2]
    rows.append(('she said "lovely"\tand meant it', "pos"))
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(
        tmp_path / "mine.tsv", sep="\t", index=False
    )
    data = reading.from_files(tmp_path / "mine.tsv", test=0.3, positive="pos")
    model = classifier.fit_text(data, config=TrainConfig(epochs=1, progress=False), max_length=32)
    assert model.report is not None and model.report.confusion.to_numpy().sum() == 4
    model.save(tmp_path / "model")
    loaded = classifier.load_text_classifier(tmp_path / "model")
    new = ["a lovely warm evening", "cold miserable rain again"]
    out = loaded.predict(new)
    assert out.columns.tolist() == ["text", "label", "p(neg)", "p(pos)"]
    assert out["text"].tolist() == new and set(out["label"]) <= {"neg", "pos"}
    torch.testing.assert_close(torch.tensor(loaded.outputs(new)), torch.tensor(model.outputs(new)))
    assert loaded.label_names == ("neg", "pos") and loaded.max_length == 32


def test_folder_to_saved_model_to_predictions(tmp_path, tiny_pretrained):
    for label, texts in {"neg": BAD * 3, "pos": GOOD * 3}.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for i, t in enumerate(texts):
            (tmp_path / "data" / label / f"{i}.txt").write_text(t)
    data = reading.from_files(tmp_path / "data", test=0.34)
    config = TrainConfig(epochs=20, lr=3e-3, progress=False, device="cpu")
    model = classifier.fit_text(data, tiny_pretrained, config=config, max_length=16)
    assert model.report.summary["accuracy"] == 1.0  # a separable toy task, learned
    model.save(tmp_path / "model")
    loaded = classifier.load_text_classifier(tmp_path / "model")
    assert loaded.predict("warm lovely sunny day")["label"].tolist() == ["pos"]
    assert loaded.predict(["grey cold rain"])["label"].tolist() == ["neg"]


def test_loading_checks_kind_and_weights(tmp_path, tiny_checkpoint, tokenizer):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_config(
        AutoConfig.from_pretrained(tiny_checkpoint, num_labels=2)
    )
    saved = classifier.TextClassifier(net, tokenizer, ("a", "b"), tiny_checkpoint, 16)
    saved.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "dlnb.json").read_text())
    (tmp_path / "m" / "dlnb.json").write_text(json.dumps({**meta, "kind": "dlnb.vision"}))
    with pytest.raises(ValueError, match="not a text classifier"):
        classifier.load_text_classifier(tmp_path / "m")
    (tmp_path / "m" / "dlnb.json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="does not match the sha256"):
        classifier.load_text_classifier(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no saved dlnb model"):
        classifier.load_text_classifier(tmp_path)


def test_fit_text_takes_a_text_data():
    with pytest.raises(TypeError, match=r"dlnb.text.from_files\(source"):
        classifier.fit_text(pd.DataFrame({"text": ["a"], "label": ["b"]}))


def test_a_mean_pooled_classifier_saves_and_loads_as_one(tmp_path, tiny_pretrained):
    from dlnb.text.finetune import MeanPooledClassifier

    data = reading.from_files(
        pd.DataFrame({"text": GOOD * 3 + BAD * 3, "label": ["pos"] * 9 + ["neg"] * 9}), test=0.34
    )
    config = TrainConfig(epochs=2, lr=3e-3, progress=False, device="cpu")
    model = classifier.fit_text(data, tiny_pretrained, config=config, max_length=16, pooling="mean")
    assert isinstance(model.model, MeanPooledClassifier)
    model.save(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "dlnb.json").read_text())["pooling"] == "mean"
    loaded = classifier.load_text_classifier(tmp_path / "model")
    assert isinstance(loaded.model, MeanPooledClassifier)
    new = ["a lovely warm evening", "cold miserable rain again"]
    torch.testing.assert_close(torch.tensor(loaded.outputs(new)), torch.tensor(model.outputs(new)))
