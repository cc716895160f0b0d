"""dlnb.vision.transfer: the MNIST task, the three methods and their data-efficiency runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from dlnb import experiments
from dlnb.data.loaders import per_class_subset
from dlnb.train import loop
from dlnb.train.history import History
from dlnb.vision import finetune as vision
from dlnb.vision import transfer as vt

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """scikit-learn's BLAS on one thread too: a thread pool fighting over a shared CPU is slow."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


TINY = vt.Recipe(
    train=replace(vt.Recipe().train, epochs=2, device="cpu"),
    batch_size=8,
    min_epoch_samples=16,
    unfreeze_per_epoch=3,
)


@pytest.fixture(scope="module")
def task():
    _, preprocess = vision.load_backbone(pretrained=False)
    return vt.image_task("mnist", preprocess, 32, test_size=60, seed=0)


def test_an_image_task_is_preprocessed_for_the_backbone(task):
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
    indices = per_class_subset(task.pool_labels, 1, seed=0)
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
    indices = per_class_subset(task.pool_labels, 1, seed=0)
    model, history, row = vt.scratch(task, indices, TINY, seed=0)
    assert len(history) == 2 and 0 <= row["test_accuracy"] <= 1
    x, _ = task.train_set(indices)
    model.eval()
    with torch.no_grad():
        conv_out = model.stages[0][0](x)
    bn = model.stages[0][1]
    torch.testing.assert_close(bn.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_an_unknown_target_dataset_is_refused():
    _, preprocess = vision.load_backbone(pretrained=False)
    with pytest.raises(ValueError, match="Unknown target dataset 'digits'"):
        vt.image_task("digits", preprocess, 32)


@pytest.mark.slow
def test_data_efficiency_rows_histories_and_the_probe_learns(task):
    frame = experiments.data_efficiency(
        vt.transfer_methods(task, TINY),
        task.pool_labels,
        [1, 3],
        [0, 1],
        keep=("history",),
        log=None,
    )
    assert len(frame) == 2 * 2 * 3
    assert list(frame.method[:3]) == list(vt.METHODS) and sorted(set(frame.per_class)) == [1, 3]
    assert set(frame.n_train) == {10, 30}
    networks = frame[frame.method != "probe"]
    assert set(zip(networks.method, networks.per_class, networks.seed, strict=True)) == {
        (m, k, s) for m in ("fine_tune", "scratch") for k in (1, 3) for s in (0, 1)
    }
    assert all(isinstance(h, History) and len(h) == 2 for h in networks.history)
    assert frame[frame.method == "probe"].history.isna().all()
    assert frame[["test_accuracy", "train_seconds", "test_seconds"]].notna().all().all()
    probe = frame[(frame.method == "probe") & (frame.per_class == 3)].test_accuracy.mean()
    assert probe > 0.35  # chance is 0.10: pretrained features separate digits from 3 examples each
    fig, ax = experiments.plot_data_efficiency(frame, "test_accuracy")
    assert len(ax.get_lines()) == 3


def test_transfer_methods_reject_unknown_methods(task):
    with pytest.raises(ValueError, match="finetune"):
        vt.transfer_methods(task, TINY, methods=("finetune",))


def test_probe_with_precomputed_test_features_agrees_with_the_model(task):
    indices = per_class_subset(task.pool_labels, 2, seed=0)
    backbone, _ = vision.load_backbone()
    features = vision.extract_features(backbone, task.x_test, device="cpu")
    _, fast = vt.probe(task, indices, TINY, test_features=features)
    _, full = vt.probe(task, indices, TINY)
    assert fast["test_accuracy"] == pytest.approx(full["test_accuracy"])


def test_the_recipe_train_config_reaches_fit_on_the_device_given(task, monkeypatch):
    runs = []
    monkeypatch.setattr(loop, "pick_device", lambda device: pytest.fail("resolved again"))

    def no_training(model, loaders, config, callbacks=(), *, device=None):
        runs.append((config, device))
        return History()

    monkeypatch.setattr(vt, "fit", no_training)
    recipe = replace(TINY, train=replace(TINY.train, lr=5e-3, seed=99))
    indices = per_class_subset(task.pool_labels, 1, seed=0)
    cpu = torch.device("cpu")
    for method in (vt.fine_tune, vt.scratch):
        _, _, row = method(task, indices, recipe, seed=4, device=cpu)
        assert 0 <= row["test_accuracy"] <= 1
    (tuned, tuned_on), (scratch, scratch_on) = runs
    assert tuned_on == scratch_on == cpu
    for config in (tuned, scratch):
        assert (config.epochs, config.scheduler, config.weight_decay) == (2, "onecycle", 0.01)
        assert (config.lr, config.seed, config.progress) == (5e-3, 4, False)  # the run's seed
    assert tuned.param_groups is not None and scratch.param_groups is None
    assert recipe.train.seed == 99  # the recipe is not changed


def test_transfer_methods_resolve_the_device_once_for_every_run(task, monkeypatch):
    resolved, devices = [], []
    real_pick = loop.pick_device
    monkeypatch.setattr(loop, "pick_device", lambda d: resolved.append(d) or real_pick(d))

    def no_training(model, loaders, config, callbacks=(), *, device=None):
        devices.append(device)
        return History()

    monkeypatch.setattr(vt, "fit", no_training)
    runs = vt.transfer_methods(task, TINY, methods=("scratch", "fine_tune"))
    assert list(runs) == ["scratch", "fine_tune"]  # in the order asked
    frame = experiments.data_efficiency(runs, task.pool_labels, [1], [0, 1], log=None)
    assert resolved == ["cpu"] and devices == [torch.device("cpu")] * 4
    assert list(frame.method) == ["scratch", "fine_tune"] * 2 and "history" not in frame
