"""dlnb.vision.targets: target tasks and their splits, the networks, the choice of experiment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.models import LeNet5
from dlnb.vision import targets
from dlnb.vision.augment import TrainAugment
from dlnb.vision.backbones import TransferNet
from dlnb.vision.cifar import CIFAR10_CLASSES
from dlnb.vision.datasets import MNIST_MEAN, MNIST_STD, as_mnist

pytestmark = pytest.mark.usefixtures("single_thread")


def disjoint(task: targets.Task) -> bool:
    rows = np.concatenate([task.pool, task.valid, task.test])
    return len(np.unique(rows)) == len(rows)


def test_digits_are_split_once_into_balanced_pool_and_validation_and_the_rest_for_testing():
    task = targets.digits_task(pool_per_class=30, valid_per_class=20, seed=0)
    assert task.images.shape == (1797, 8, 8) and task.images.dtype == np.float32
    assert 0 <= task.images.min() and task.images.max() == 1.0  # 0..16 grey levels read as 0..1
    assert disjoint(task) and len(task.pool) + len(task.valid) + len(task.test) == 1797
    assert np.bincount(task.pool_labels).tolist() == [30] * 10
    assert np.bincount(task.labels[task.valid]).tolist() == [20] * 10
    assert task.num_classes == 10 and task.pixels().shape == (1797, 64)
    other = targets.digits_task(seed=1)
    assert not np.array_equal(other.pool, task.pool)
    assert np.array_equal(targets.digits_task(seed=0).test, task.test)  # seeded


def fake_arrays(n_train: int = 200, n_test: int = 50, shape=(32, 32, 3)):
    rng = np.random.default_rng(0)

    def split(n):
        return {"x": rng.integers(0, 256, (n, *shape), dtype=np.uint8), "y": np.arange(n) % 10}

    return {"train": split(n_train), "test": split(n_test)}


@pytest.fixture
def fake_cifar(monkeypatch):
    """CIFAR-10 as 200 training and 50 test images of noise (the download is not needed)."""
    arrays = fake_arrays()

    def load(name, split=None):
        assert name == "cifar10"
        return arrays[split] if split else arrays

    monkeypatch.setattr(targets, "load", load)
    return arrays


def test_an_image_task_takes_pool_and_validation_from_train_and_tests_on_test(fake_cifar):
    task = targets.image_task("cifar10", pool_per_class=5, valid_per_class=3, test_size=40)
    assert task.classes == CIFAR10_CLASSES and disjoint(task)
    assert (len(task.pool), len(task.valid), len(task.test)) == (50, 30, 40)
    assert np.bincount(task.pool_labels).tolist() == [5] * 10
    assert task.images.shape == (120, 32, 32, 3) and task.pixels().shape == (120, 3072)
    assert float(task.pixels().max()) <= 1.0
    test_rows = [
        np.flatnonzero((fake_cifar["test"]["x"] == image).all(axis=(1, 2, 3)))
        for image in task.images[task.test]
    ]
    assert all(len(r) == 1 for r in test_rows)  # test images come from the test split
    with pytest.raises(ValueError, match="Unknown image dataset 'digits'"):
        targets.image_task("digits")


def test_lenet_networks_start_from_the_weights_given_with_a_new_head():
    torch.manual_seed(0)
    source = LeNet5().eval()
    network = targets.lenet_network(as_mnist, source.state_dict(), name="src")
    net = network.build(7)
    assert net.head.out_features == 7 and net.num_features == 84
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = source.classifier[:-1](source.features(x))
        torch.testing.assert_close(net.eval().features(x), expected)
    torch.manual_seed(1)
    a = targets.lenet_network(as_mnist).build(10)
    torch.manual_seed(2)
    b = targets.lenet_network(as_mnist).build(10)
    assert not torch.equal(a.head.weight, b.head.weight)  # fresh networks are random
    assert network.prepare(np.zeros((2, 8, 8), np.float32)).shape == (2, 1, 28, 28)


def test_the_cifar_setup_prepares_images_for_each_network(fake_cifar):
    setup = targets.cifar_setup(image_size=32, pool_per_class=5, valid_per_class=3, test_size=20)
    task = setup.task
    assert "ImageNet" in setup.source and setup.scratch is not None
    inputs = setup.pretrained.prepare(task.images[:4])
    assert inputs.shape == (4, 3, 32, 32)
    assert setup.scratch.prepare(task.images[:4]).shape == (4, 3, 28, 28)  # centre crops
    net = setup.pretrained.build(task.num_classes)
    assert isinstance(net, TransferNet) and net.bn_stats_frozen and net.head.out_features == 10
    assert isinstance(setup.pretrained.augment, TrainAugment)
    with torch.no_grad():
        assert setup.scratch.build(10)(setup.scratch.prepare(task.images[:2])).shape == (2, 10)


@pytest.fixture
def fake_mnist(monkeypatch):
    """MNIST as 300 training and 100 test images of noise, labels 0..9 in turn."""
    arrays = fake_arrays(n_train=300, n_test=100, shape=(28, 28))

    def load(name, split=None):
        assert name == "mnist"
        return arrays[split]

    monkeypatch.setattr(targets, "load", load)
    return arrays


def test_an_image_task_can_keep_only_some_classes_relabelled_in_order(fake_mnist):
    task = targets.image_task("mnist", 4, 2, test_size=None, classes=(7, 5))
    assert task.classes == ("7", "5") and task.name == "mnist 7, 5" and disjoint(task)
    assert (len(task.pool), len(task.valid), len(task.test)) == (8, 4, 20)  # 10 of each in test
    shown = fake_mnist["train"]["x"]
    for row in task.pool:  # each image is one of the training 7s (label 0) or 5s (label 1)
        found = np.flatnonzero((shown == task.images[row]).all(axis=(1, 2)))
        assert fake_mnist["train"]["y"][found[0]] == (7, 5)[task.labels[row]]
    assert targets.image_task("mnist", 2, 1, classes=(5, 6, 7)).name == "mnist 5-7"
    with pytest.raises(ValueError, match="at least two different labels"):
        targets.image_task("mnist", classes=(5,))


def test_the_new_digits_setup_moves_a_copy_of_the_source_to_digits_it_never_saw(fake_mnist):
    source = LeNet5(num_classes=5)
    setup = targets.new_digits_setup(source, pool_per_class=6, valid_per_class=3, test_size=None)
    assert setup.task.classes == tuple("56789") and "0-4" in setup.source
    assert set(setup.task.labels) == set(range(5))
    with torch.no_grad():
        source.features[0].weight.zero_()  # later changes to the source do not leak in
    net = setup.pretrained.build(5)
    assert net.num_features == 400 and net.head.out_features == 5  # cut after the convolutions
    assert net.body[0][0].weight.abs().sum() > 0
    scratch = setup.scratch.build(5)
    assert scratch.num_features == 84  # the whole LeNet-5, from scratch
    inputs = setup.pretrained.prepare(setup.task.images[:2])
    assert inputs.shape == (2, 1, 28, 28)
    expected = (setup.task.images[:2] / 255.0 - MNIST_MEAN) / MNIST_STD  # normalised, not resized
    np.testing.assert_allclose(inputs[:, 0].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="among the source's"):
        targets.new_digits_setup(source, target_digits=(4, 5))
