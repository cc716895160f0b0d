"""dlnb.vision.preprocess: the image forms it reads, resizing and cropping, normalisation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.vision.backbones import LITE_MEAN, LITE_STD, load_backbone
from dlnb.vision.preprocess import IMAGENET_MEAN, Preprocess

pytestmark = pytest.mark.usefixtures("single_thread", "one_blas_thread")


def test_preprocess_accepts_the_usual_image_forms():
    pre = Preprocess(size=32, resize=36)
    rgb = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert pre(rgb).shape == (1, 3, 32, 32)
    assert pre([rgb, rgb[:40, :45]]).shape == (2, 3, 32, 32)
    assert pre(np.zeros((5, 28, 28), np.uint8)).shape == (5, 3, 32, 32)  # grey batch
    assert pre(np.zeros((5, 28, 28, 4), np.uint8)).shape == (5, 3, 32, 32)  # RGBA batch
    assert pre(torch.rand(4, 1, 40, 40)).shape == (4, 3, 32, 32)  # torch (N, C, H, W)
    grey = pre.denormalize(
        pre(np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8))
    )
    torch.testing.assert_close(grey[:, 0], grey[:, 1])
    torch.testing.assert_close(grey[:, 1], grey[:, 2])


def test_preprocess_normalises_with_the_backbones_statistics():
    _, lite = load_backbone(pretrained=False)
    assert lite.mean == LITE_MEAN and lite.std == LITE_STD
    black, white = np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)
    out = lite.at(8, crop=False)([black, white])
    torch.testing.assert_close(out[0], torch.full((3, 8, 8), -127 / 128))
    torch.testing.assert_close(out[1], torch.full((3, 8, 8), 1.0))
    imagenet = Preprocess(size=4, resize=4)
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    torch.testing.assert_close(imagenet(mean_image), torch.zeros(1, 3, 4, 4))
    torch.testing.assert_close(imagenet.denormalize(imagenet(mean_image)), mean_image)


def test_preprocess_resizes_the_shorter_side_then_centre_crops():
    image = np.zeros((100, 200), np.uint8)
    image[:, 50:150] = 255  # the centre square is white, the sides black
    crop_only = Preprocess(size=100, resize=100, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.equal(
        crop_only(image), torch.ones(1, 3, 100, 100)
    )  # only the white centre is kept
    framed = np.zeros((64, 64), np.uint8)
    framed[4:-4, 4:-4] = 255  # a white square in a black frame
    pre = Preprocess(size=32, resize=40, mean=(0, 0, 0), std=(1, 1, 1))
    assert pre(framed).min() > 0.99  # the frame is in the margin cut off by the crop
    assert pre.at(32, crop=False)(framed).min() < 0.1  # no margin: the frame stays
    assert pre.at(100).resize == 125 and pre.at(100, crop=False).resize == 100
    assert Preprocess(224, 256).at(64).resize == 73


def test_preprocess_matches_torchvision_transforms():
    from torchvision.models import ResNet18_Weights

    image = torch.from_numpy(
        np.random.default_rng(1).integers(0, 256, (3, 300, 400), dtype=np.uint8)
    )
    expected = ResNet18_Weights.IMAGENET1K_V1.transforms()(image)
    ours = Preprocess(224, 256)(image.unsqueeze(0))[0]
    assert ours.shape == expected.shape
    assert (ours - expected).abs().mean() < 0.01


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((2, 3, 4, 5, 6), np.uint8), ValueError, "Cannot read images"),
        (np.full((8, 8, 3), 2.0, np.float32), ValueError, r"\[0, 1\]"),
        (np.zeros((1, 8, 8, 2), np.uint8), ValueError, "channels"),
        (torch.zeros(2, 5, 8, 8), ValueError, "channels"),
        (np.zeros((8, 8), np.int64), TypeError, "uint8"),
        ([], ValueError, "empty"),
    ],
)
def test_preprocess_rejects_bad_input_clearly(bad, error, match):
    with pytest.raises(error, match=match):
        Preprocess(size=8, resize=8)(bad)


def test_preprocess_checks_its_settings():
    with pytest.raises(ValueError, match="at least size"):
        Preprocess(size=224, resize=200)


def test_a_preprocess_prints_as_a_plain_sentence():
    text = str(Preprocess(size=224, resize=256))
    assert text.startswith("resize the shorter side to 256 px (bilinear), centre-crop 224 x 224")
    assert "mean (0.485, 0.456, 0.406)" in text and "std (0.229, 0.224, 0.225)" in text
    assert repr(Preprocess()).startswith("Preprocess(size=224")  # the repr stays exact
