"""dlnb.vision.pretrain: LeNet-5 as a feature extractor and a head, and the cached MNIST source."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from dlnb.models import LeNet5
from dlnb.vision import pretrain

pytestmark = pytest.mark.usefixtures("single_thread")


def test_headed_lenet_computes_what_lenet_computes():
    torch.manual_seed(0)
    lenet = LeNet5().eval()
    net = pretrain.lenet_headed(lenet)
    x = torch.randn(5, 1, 28, 28)
    assert net.features(x).shape == (5, 84) and net.num_features == 84
    torch.testing.assert_close(net(x), lenet(x))
    assert net.head is lenet.classifier[-1]  # the same layers, not copies


def test_lenet_can_be_cut_after_its_convolutions_or_either_dense_layer():
    torch.manual_seed(0)
    lenet = LeNet5(num_classes=5).eval()
    x = torch.randn(3, 1, 28, 28)
    for cut, width in (("conv", 400), ("fc1", 120), ("fc2", 84)):
        net = pretrain.lenet_headed(lenet, cut)
        assert net.features(x).shape == (3, width) and net.head.out_features == 5
    conv = pretrain.lenet_headed(lenet, "conv")
    torch.testing.assert_close(conv.features(x), lenet.features(x).flatten(1))
    assert conv.body[0] is lenet.features  # the model's own layers
    with torch.no_grad():
        fc1 = pretrain.lenet_headed(lenet, "fc1").features(x)
        torch.testing.assert_close(
            fc1, torch.relu(lenet.classifier[1](lenet.features(x).flatten(1)))
        )
    with pytest.raises(ValueError, match="Unknown cut 'fc3'"):
        pretrain.lenet_headed(lenet, "fc3")


def test_a_headed_network_is_its_body_then_its_head():
    net = pretrain.Headed(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(net(x), net.head(x.flatten(1)))


def test_the_cache_key_follows_what_shapes_the_weights():
    config = pretrain.SOURCE_TRAINING
    key = pretrain.source_key(config, 128, 2)
    assert key == pretrain.source_key(replace(config, device="cuda", progress=True), 128, 2)
    assert key != pretrain.source_key(replace(config, lr=1e-3), 128, 2)
    assert key != pretrain.source_key(replace(config, epochs=3), 128, 2)
    assert key != pretrain.source_key(config, 64, 2) != pretrain.source_key(config, 128, 0)
    assert len(key) == 12 and pretrain.source_path().name == f"lenet5-mnist-{key}.pt"
    assert key == pretrain.source_key(config, 128, 2, range(10))  # all ten: the key of old files
    assert key != pretrain.source_key(config, 128, 2, (0, 1, 2, 3, 4))


@pytest.fixture
def tiny_mnist(monkeypatch):
    """Replace MNIST by 64 random images (train) and 32 (test): training takes a moment."""
    generator = torch.Generator().manual_seed(0)

    def tensors(split: str = "train", subset=None, seed: int = 0):
        n = 64 if split == "train" else 32
        return torch.randn(n, 1, 28, 28, generator=generator), torch.arange(n) % 10

    monkeypatch.setattr(pretrain, "mnist_tensors", tensors)


def test_a_source_of_some_digits_learns_only_those(tmp_data_dir, monkeypatch):
    seen: list[torch.Tensor] = []
    real_fit = pretrain.fit

    def spy(model, loaders, config, **kwargs):
        seen.extend(y for _, y in loaders.train)
        return real_fit(model, loaders, config, **kwargs)

    def tensors(split: str = "train", subset=None, seed: int = 0):
        n = 40 if split == "train" else 20
        return torch.randn(n, 1, 28, 28), torch.arange(n) % 10

    monkeypatch.setattr(pretrain, "mnist_tensors", tensors)
    monkeypatch.setattr(pretrain, "fit", spy)
    config = replace(pretrain.SOURCE_TRAINING, epochs=1)
    model, about = pretrain.mnist_lenet(config, batch_size=8, digits=(7, 3), device="cpu")
    assert model.classifier[-1].out_features == 2 and about["digits"] == [7, 3]
    assert about["train_images"] == 8  # the 7s and 3s of 40 images labelled 0..9 in turn
    labels = torch.cat(seen)
    assert len(labels) == 8 and set(labels.tolist()) == {0, 1}  # 7 -> 0, 3 -> 1
    assert "lenet5-mnist-" in about["path"] and about["path"] != str(
        pretrain.source_path(config, 8)
    )
    with pytest.raises(ValueError, match="at least two different digits"):
        pretrain.mnist_lenet(config, digits=(3,))
    with pytest.raises(ValueError, match="at least two different digits"):
        pretrain.mnist_lenet(config, digits=(3, 10))


def test_the_source_is_trained_once_then_loaded(tmp_data_dir, tiny_mnist, monkeypatch):
    config = replace(pretrain.SOURCE_TRAINING, epochs=1)
    model, about = pretrain.mnist_lenet(config, batch_size=16, device="cpu")
    path = tmp_data_dir / "weights" / f"lenet5-mnist-{pretrain.source_key(config, 16, 2)}.pt"
    assert not about["cached"] and about["path"] == str(path) and path.exists()
    assert 0 <= about["test_accuracy"] <= 1 and about["train_seconds"] > 0
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    torch.load(path, weights_only=True)  # tensors and plain values only

    def refuse(*args, **kwargs):
        raise RuntimeError("trained again")

    monkeypatch.setattr(pretrain, "fit", refuse)
    again, about_again = pretrain.mnist_lenet(config, batch_size=16)
    assert about_again["cached"] and about_again["test_accuracy"] == about["test_accuracy"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = replace(config, lr=1e-2)
    with pytest.raises(RuntimeError, match="trained again"):
        pretrain.mnist_lenet(other, batch_size=16)  # other settings: another file
