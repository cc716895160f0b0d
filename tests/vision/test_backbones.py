"""dlnb.vision.backbones: loading pretrained and scratch backbones, their weights files, TransferNet."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from dlnb.data.registry import ChecksumError, RemoteFile, sha256_file
from dlnb.vision import backbones
from dlnb.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from tests.conftest import fresh

pytestmark = pytest.mark.usefixtures("single_thread", "one_blas_thread")


# --- loading -------------------------------------------------------------------------------------


def test_lite0_matches_the_package_model_it_is_cut_from(lite0):
    from efficientnet_lite_pytorch import EfficientNet

    model, _ = lite0
    reference = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    reference.load_state_dict(torch.load(backbones.lite0_weights_path(), weights_only=True))
    x = torch.randn(2, 3, 64, 64)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert len(model.stages) == 9 and model.num_features == 1280 and model.head.out_features == 1000


def test_scratch_model_has_the_same_architecture_and_different_weights(lite0):
    pretrained = lite0[0].state_dict()
    scratch = fresh(num_classes=1000).state_dict()
    assert {k: v.shape for k, v in scratch.items()} == {k: v.shape for k, v in pretrained.items()}
    key = "stages.0.0.weight"  # the stem convolution
    assert not torch.allclose(scratch[key], pretrained[key])


def test_num_classes_replaces_the_head_and_bn_momentum_is_set():
    model, _ = backbones.load_backbone(num_classes=7, bn_momentum=0.2)
    assert model.head.out_features == 7 and model.head.in_features == 1280
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.2 for m in bns)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        backbones.load_backbone("vgg11")


def test_imagenet_categories():
    names = backbones.imagenet_categories()
    assert len(names) == 1000 and names[281] == "tabby" and names[967] == "espresso"


# --- weights files -------------------------------------------------------------------------------


def test_pinned_lite0_sha256_is_the_installed_file():
    assert sha256_file(backbones.lite0_weights_path()) == backbones.LITE0_SHA256


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_corrupt_weights_file_is_a_clear_error(tmp_path, damage):
    good = backbones.lite0_weights_path()
    bad = tmp_path / good.name
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: 1 << 20])
    else:
        shutil.copy(good, bad)
        blob = bytearray(bad.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        bad.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError) as info:
        backbones.load_backbone(weights_path=bad)
    message = str(info.value)
    assert str(bad) in message and backbones.LITE0_SHA256 in message
    assert sha256_file(bad) in message and "reinstall" in message.lower()


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        backbones.load_backbone(weights_path=tmp_path / "nope.pth")


def test_torchvision_pins_agree_with_torchvision():
    from torchvision.models import get_weight

    for name, (enum_name, file) in backbones.TORCHVISION_WEIGHTS.items():
        url = get_weight(enum_name).url
        assert file.url == url and file.filename == url.rsplit("/", 1)[-1], name
        assert file.filename.split("-")[-1].removesuffix(".pth") == file.sha256[:8]


@pytest.mark.slow
def test_torchvision_weights_download_once_into_dlnb_data(
    tmp_data_dir, local_http_server, monkeypatch
):
    import torchvision

    original = torchvision.models.resnet18(weights=None).state_dict()
    served = local_http_server.root / "resnet18-test.pth"
    torch.save(original, served)
    file = RemoteFile(local_http_server.url(served.name), sha256_file(served), served.name)
    monkeypatch.setitem(
        backbones.TORCHVISION_WEIGHTS, "resnet18", ("ResNet18_Weights.IMAGENET1K_V1", file)
    )

    model, preprocess = backbones.load_backbone("resnet18")
    torch.testing.assert_close(model.stages[0][0].weight, original["conv1.weight"])
    torch.testing.assert_close(model.head.weight, original["fc.weight"])
    assert (tmp_data_dir / "weights" / served.name).exists()
    assert preprocess == Preprocess(224, 256, IMAGENET_MEAN, IMAGENET_STD)

    backbones.load_backbone("resnet18")  # the second time from $DLNB_DATA, no request
    assert len(local_http_server.requests) == 1


def test_torchvision_download_with_a_wrong_checksum_keeps_nothing(
    tmp_data_dir, local_http_server, monkeypatch
):
    served = local_http_server.root / "resnet18-bad.pth"
    served.write_bytes(b"not the weights")
    file = RemoteFile(local_http_server.url(served.name), "0" * 64, served.name)
    monkeypatch.setitem(
        backbones.TORCHVISION_WEIGHTS, "resnet18", ("ResNet18_Weights.IMAGENET1K_V1", file)
    )
    with pytest.raises(ChecksumError, match="0" * 64):
        backbones.load_backbone("resnet18")
    assert not any((tmp_data_dir / "weights").iterdir())


def test_torchvision_download_without_network_says_what_to_do(tmp_data_dir, monkeypatch):
    file = RemoteFile("http://127.0.0.1:9/resnet18-f37072fd.pth", "0" * 64, "resnet18-f37072fd.pth")
    monkeypatch.setitem(
        backbones.TORCHVISION_WEIGHTS, "resnet18", ("ResNet18_Weights.IMAGENET1K_V1", file)
    )
    with pytest.raises(ConnectionError, match="efficientnet_lite0"):
        backbones.load_backbone("resnet18")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_b0"])
def test_torchvision_backbones_are_cut_into_stages_and_keep_their_forward(name):
    import torchvision

    model, preprocess = backbones.load_backbone(name, pretrained=False, bn_momentum=0.1)
    reference = torchvision.models.get_model(name, weights=None)
    missing = reference.load_state_dict(
        {k: v for k, v in zip(reference.state_dict(), model.state_dict().values(), strict=True)}
    )
    assert not missing.missing_keys
    x = torch.randn(1, 3, 64, 64)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert preprocess.size == 224 and preprocess.resize in (232, 256)


# --- the model -----------------------------------------------------------------------------------


def test_transfernet_rejects_unpreprocessed_input():
    with pytest.raises(ValueError, match="Preprocess"):
        fresh()(torch.zeros(2, 1, 32, 32))
