"""Your own image folder: raw PNG files -> trained model -> saved -> loaded -> labels for new
files, and a clear error for each bad folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlnb.data.loaders import make_loaders
from dlnb.models import LeNet5
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit
from dlnb.train.report import classification_report
from dlnb.vision.folder import (
    ImageClassifier,
    from_folder,
    image_inputs,
    load_image_classifier,
    write_image_folder,
)
from dlnb.vision.preprocess import Preprocess


def _bar(vertical: bool, rng: np.random.Generator) -> Image.Image:
    """A white bar on black at a random place: vertical or horizontal, 20x20 pixels."""
    pixels = (rng.random((20, 20)) * 40).astype(np.uint8)
    at = rng.integers(4, 16)
    if vertical:
        pixels[:, at - 1 : at + 2] = 255
    else:
        pixels[at - 1 : at + 2, :] = 255
    return Image.fromarray(pixels)


def _write(root: Path, per_class: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    files = []
    for name in ("horizontal", "vertical"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            files.append(root / name / f"{i}.png")
            _bar(name == "vertical", rng).save(files[-1])
    return files


def test_raw_folder_to_saved_model_to_predictions_on_new_files(tmp_path):
    _write(tmp_path / "train", 24, seed=0)
    images = from_folder(tmp_path / "train")
    assert images.classes == ("horizontal", "vertical") and images.x.shape == (48, 1, 28, 28)
    loaders = make_loaders(images.x, images.y, valid_fraction=0.25, stratify=True, batch_size=8)
    torch.manual_seed(0)
    net = LeNet5(num_classes=2)
    fit(net, loaders, TrainConfig(epochs=8, lr=3e-3, progress=False, device="cpu"))
    report = classification_report(net, loaders.valid, images.classes)
    assert report.summary["accuracy"] == 1.0 and report.confusion.to_numpy().trace() == 12
    arch = {"name": "LeNet5", "num_classes": 2}
    saved = ImageClassifier(net, images.classes, architecture=arch).save(tmp_path / "model")
    new = _write(tmp_path / "new", 10, seed=1)
    out = load_image_classifier(saved).predict(new)
    truth = [Path(f).parent.name for f in new]
    assert (out["label"] == truth).mean() >= 0.9 and list(out.columns)[0] == "label"
    assert np.allclose(out[["p(horizontal)", "p(vertical)"]].sum(axis=1), 1, atol=1e-5)


def test_a_backbone_preprocessing_gives_rgb_inputs(tmp_path):
    files = _write(tmp_path, 2, seed=0)
    x = image_inputs(files, Preprocess(size=32, resize=36))
    assert x.shape == (4, 3, 32, 32)


def test_each_bad_folder_gets_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        from_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    _bar(True, np.random.default_rng(0)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match="no class folders .1 images lie directly"):
        from_folder(tmp_path / "flat")
    _write(tmp_path / "one", 2, seed=0)
    for f in (tmp_path / "one" / "vertical").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="holds no images"):
        from_folder(tmp_path / "one")
    (tmp_path / "one" / "vertical").rmdir()
    with pytest.raises(ValueError, match="single class folder"):
        from_folder(tmp_path / "one")
    _write(tmp_path / "mixed", 2, seed=0)
    (tmp_path / "mixed" / "vertical" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"not images \(vertical/notes.txt\)"):
        from_folder(tmp_path / "mixed")
    (tmp_path / "mixed" / "vertical" / "notes.txt").unlink()
    (tmp_path / "mixed" / "vertical" / "broken.png").write_text("not a png")
    with pytest.raises(ValueError, match="broken.png is not a readable image"):
        from_folder(tmp_path / "mixed")


def test_loading_without_an_architecture_asks_for_the_network(tmp_path):
    net = LeNet5(num_classes=3)
    saved = ImageClassifier(net, ("a", "b", "c")).save(tmp_path / "m")
    with pytest.raises(ValueError, match="pass net="):
        load_image_classifier(saved)
    with pytest.raises(ValueError, match="other shapes"):
        load_image_classifier(saved, LeNet5(num_classes=2))
    assert load_image_classifier(saved, LeNet5(num_classes=3)).classes == ("a", "b", "c")


def test_a_saved_classifier_carries_a_card_that_says_what_it_lacks(tmp_path):
    import json

    from dlnb.lifecycle import ModelCardMismatch, metrics_on
    from dlnb.train.card import ModelCard

    arch = {"name": "LeNet5", "num_classes": 2}
    saved = ImageClassifier(LeNet5(num_classes=2), ("a", "b"), architecture=arch).save(
        tmp_path / "m"
    )
    card = ModelCard.read(saved)
    assert card.name == "LeNet5 image classifier" and card.metrics == []
    assert any("No test metrics" in text for text in card.limitations)
    rows = metrics_on({"accuracy": 0.95}, "my test images", 40)
    scored = ImageClassifier(LeNet5(num_classes=2), ("a", "b"), architecture=arch).save(
        tmp_path / "scored", card={"metrics": rows}
    )
    card = ModelCard.read(scored)
    assert card.metrics == rows and not any("No test metrics" in t for t in card.limitations)
    meta = json.loads((scored / "dlnb.json").read_text())
    (scored / "dlnb.json").write_text(json.dumps({**meta, "classes": ["b", "a"]}))
    with pytest.raises(ModelCardMismatch, match="dlnb.json differs"):
        load_image_classifier(scored)


def test_write_image_folder_writes_the_layout_from_folder_reads(tmp_path):
    images = (np.arange(4 * 28 * 28) % 256).astype(np.uint8).reshape(4, 28, 28)
    files = write_image_folder(images, [0, 1, 1, 0], ["five", "six"], tmp_path / "mine")
    assert [f.parent.name for f in files] == ["five", "six", "six", "five"]
    read = from_folder(tmp_path / "mine")
    assert list(read.classes) == ["five", "six"] and len(read) == 4
    with pytest.raises(ValueError, match="grey uint8 images"):
        write_image_folder(images.astype(np.float32), [0] * 4, ["a"], tmp_path / "bad")
