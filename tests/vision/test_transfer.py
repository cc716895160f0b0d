"""dlnb.vision_transfer: the MNIST task, the three methods and the data-efficiency experiment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlnb.vision import finetune as vision
from dlnb.vision import transfer as vt

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """scikit-learn's BLAS on one thread too: a thread pool fighting over a shared CPU is slow."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


TINY = vt.Recipe(epochs=2, batch_size=8, min_epoch_samples=16, unfreeze_per_epoch=3, device="cpu")


@pytest.fixture(scope="module")
def task():
    _, preprocess = vision.load_backbone(pretrained=False)
    return vt.mnist_task(preprocess, 32, test_size=60, seed=0)


def test_mnist_task_is_preprocessed_for_the_backbone(task):
    assert task.x_test.shape == (60, 3, 32, 32) and task.y_test.dtype == torch.int64
    assert task.num_classes == 10 and len(task.pool_labels) == 60_000
    assert task.preprocess.mean == vision.load_backbone(pretrained=False)[1].mean
    x, y = task.train_set(np.array([0, 1, 2]))
    assert x.shape == (3, 3, 32, 32) and y.tolist() == task.pool_labels[:3].tolist()
    black = (0 - task.preprocess.mean[0]) / task.preprocess.std[0]
    assert abs(float(x.min()) - black) < 1e-5  # MNIST's black background, in the backbone's scale


@pytest.mark.slow
def test_digit_augment_moves_pixels_and_fills_with_black(task):
    torch.manual_seed(0)
    augment = vt.digit_augment(task.preprocess)
    black = (0 - task.preprocess.mean[0]) / task.preprocess.std[0]
    blank = torch.full((3, 32, 32), black)
    torch.testing.assert_close(augment(blank), blank)  # new borders are black too
    digit = task.train_set(np.array([0]))[0][0]
    moved = augment(digit)
    assert moved.shape == digit.shape and not torch.equal(moved, digit)


def stem(model: vision.TransferNet) -> torch.Tensor:
    return model.stages[0][0].weight.detach().clone()


@pytest.mark.slow
def test_fine_tune_keeps_the_stem_and_the_batchnorm_statistics(task):
    indices = vision.per_class_subset(task.pool_labels, 1, seed=0)
    pretrained, _ = vision.load_backbone()
    model, history, row = vt.fine_tune(task, indices, TINY, seed=0)
    assert len(history) == 2 and {"train_seconds", "test_accuracy", "test_seconds"} <= set(row)
    assert torch.equal(stem(model), stem(pretrained))  # 2 epochs, 3 stages each: stem frozen
    assert not torch.equal(model.stages[-1][0].weight, pretrained.stages[-1][0].weight)
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_pre = [m for m in pretrained.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a.running_var, b.running_var) for a, b in zip(bn, bn_pre, strict=True))


@pytest.mark.slow
def test_scratch_recalibrates_batchnorm_on_its_training_images(task):
    indices = vision.per_class_subset(task.pool_labels, 1, seed=0)
    model, history, row = vt.scratch(task, indices, TINY, seed=0)
    assert len(history) == 2 and 0 <= row["test_accuracy"] <= 1
    x, _ = task.train_set(indices)
    model.eval()
    with torch.no_grad():
        conv_out = model.stages[0][0](x)
    bn = model.stages[0][1]
    torch.testing.assert_close(bn.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_data_efficiency_rows_histories_and_the_probe_learns(task):
    frame, histories = vt.data_efficiency(task, [1, 3], [0, 1], TINY, log=None)
    assert len(frame) == 2 * 2 * 3
    assert set(frame.method) == set(vt.METHODS) and sorted(set(frame.per_class)) == [1, 3]
    assert set(frame.n_train) == {10, 30}
    assert set(histories) == {
        (m, k, s) for m in ("fine_tune", "scratch") for k in (1, 3) for s in (0, 1)
    }
    assert frame[["test_accuracy", "train_seconds", "test_seconds"]].notna().all().all()
    probe = frame[(frame.method == "probe") & (frame.per_class == 3)].test_accuracy.mean()
    assert probe > 0.35  # chance is 0.10: pretrained features separate digits from 3 examples each
    fig, ax = vt.plot_curve(frame)
    assert len(ax.get_lines()) == 3


def test_data_efficiency_rejects_unknown_methods(task):
    with pytest.raises(ValueError, match="finetune"):
        vt.data_efficiency(task, [1], [0], TINY, methods=("finetune",))


def test_probe_with_precomputed_test_features_agrees_with_the_model(task):
    indices = vision.per_class_subset(task.pool_labels, 2, seed=0)
    backbone, _ = vision.load_backbone()
    features = vision.extract_features(backbone, task.x_test, device="cpu")
    _, fast = vt.probe(task, indices, TINY, test_features=features)
    _, full = vt.probe(task, indices, TINY)
    assert fast["test_accuracy"] == pytest.approx(full["test_accuracy"])
