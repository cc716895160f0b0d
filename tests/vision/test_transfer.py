"""dlnb.vision.transfer: the four methods, their tuning on the validation set, their runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from dlnb import experiments
from dlnb.data.loaders import per_class_subset
from dlnb.models import LeNet5
from dlnb.train.config import TrainConfig
from dlnb.train.history import History
from dlnb.vision import augment, targets
from dlnb.vision import transfer as vt
from dlnb.vision.augment import digit_augment
from dlnb.vision.datasets import as_mnist

pytestmark = pytest.mark.usefixtures("single_thread", "one_blas_thread")

TINY = vt.Budget(
    train=TrainConfig(
        epochs=2, scheduler="onecycle", weight_decay=0.01, progress=False, device="cpu"
    ),
    scratch_steps=6,
    fine_tune_steps=4,
    batch_size=8,
    scratch_lrs=(1e-3, 1e-2),
    fine_tune_lrs=(1e-4, 1e-3),
    cs=(0.1, 1.0),
)


@pytest.fixture(scope="module")
def setup():
    """scikit-learn's 8x8 digits (small and offline) with a LeNet-5 'pretrained' at random."""
    torch.manual_seed(0)
    weights = LeNet5().state_dict()
    return targets.Setup(
        targets.digits_task(pool_per_class=6, valid_per_class=4, seed=0),
        targets.lenet_network(as_mnist, weights, augment=digit_augment(), name="pretrained"),
        targets.lenet_network(as_mnist, augment=digit_augment(), name="scratch"),
        "random weights",
    )


def test_a_budget_refuses_what_cannot_run():
    with pytest.raises(ValueError, match="one step per epoch"):
        vt.Budget(fine_tune_steps=2, train=TrainConfig(epochs=3))
    with pytest.raises(ValueError, match="batch_size"):
        vt.Budget(batch_size=0)
    with pytest.raises(ValueError, match="at least one learning rate"):
        vt.Budget(scratch_lrs=())


def test_a_budget_describes_itself_in_two_lines():
    lines = TINY.describe().splitlines()
    assert lines[0] == (
        "networks: 6 steps from scratch, 4 fine-tuning, batches of 8, 2 epochs of adamw "
        "(onecycle schedule, weight decay 0.01) on cpu"
    )
    assert lines[1].startswith("tried on validation: learning rates 0.001, 0.01 (from scratch)")


def test_logistic_regression_picks_its_c_on_the_validation_set(setup):
    task = setup.task
    rows = task.pool[per_class_subset(task.pool_labels, 3, seed=0)]
    head, result = vt.fit_logistic(task.pixels(), task, rows, (1e-4, 1.0, 100.0))
    assert set(result["grid"]) == {1e-4, 1.0, 100.0}
    assert result["grid"][result["setting"]] == max(result["grid"].values())
    assert result["valid_accuracy"] == result["grid"][result["setting"]]
    logits = result["test_logits"]
    assert logits.shape == (len(task.test), 10) and head.out_features == 10
    assert result["test_accuracy"] == pytest.approx(
        (logits.argmax(1) == task.labels[task.test]).mean()
    )
    assert result["test_accuracy"] > 0.5  # 30 digits of pixels already separate the classes well


def counting_augment() -> tuple[augment.TrainAugment, list[int]]:
    calls: list[int] = []

    def count(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x

    return augment.TrainAugment(count, "count"), calls


def test_a_network_takes_the_same_steps_however_small_its_training_set(setup):
    task = setup.task
    counter, calls = counting_augment()
    network = replace(setup.scratch, augment=counter)
    inputs = network.prepare(task.images)
    for per_class in (1, 6):
        calls.clear()
        rows = task.pool[per_class_subset(task.pool_labels, per_class, seed=0)]
        model = network.build(10)
        before = model.head.weight.detach().clone()
        history = vt.train_network(
            network, model, inputs, task, rows, 1e-2, 6, TINY, 0, torch.device("cpu")
        )
        assert calls == [8] * 6  # 6 augmented batches of 8, for 10 images as for 60
        assert len(history) == 2 and 0 <= history.last("valid_accuracy") <= 1
        assert not torch.equal(model.head.weight, before)


def test_a_run_trains_with_the_callers_config_setting_only_its_rate_and_seed(setup, monkeypatch):
    configs: list[TrainConfig] = []

    def spy(model, loaders, config, device=None):
        configs.append(config)
        history = History()
        history.records.append({"epoch": 1, "valid_accuracy": 0.5})
        return history

    monkeypatch.setattr(vt, "fit", spy)
    train = replace(TINY.train, label_smoothing=0.1, grad_clip=1.0, optimizer="sgd")
    budget = replace(TINY, train=train)
    rows = setup.task.pool[per_class_subset(setup.task.pool_labels, 1, seed=0)]
    network = setup.scratch
    vt.train_network(
        network, network.build(10), network.prepare(setup.task.images), setup.task, rows,
        3e-3, 6, budget, 7, torch.device("cpu"),
    )  # fmt: skip
    assert configs == [replace(train, lr=3e-3, seed=7, device="cpu")]


def test_methods_run_tune_once_per_size_and_keep_what_error_analysis_needs(setup):
    runs = vt.transfer_methods(setup, TINY)
    assert list(runs) == list(vt.METHODS)
    frame = experiments.data_efficiency(
        runs,
        setup.task.pool_labels,
        [1, 2],
        [0, 1],
        keep=("grid", "test_logits", "history"),
        log=None,
    )
    assert len(frame) == 2 * 2 * 4 and set(frame.n_train) == {10, 20}
    first, second = frame[frame.seed == 0], frame[frame.seed == 1]
    for method, lrs in (("scratch", TINY.scratch_lrs), ("fine_tune", TINY.fine_tune_lrs)):
        tuned = first[first.method == method]
        reused = second[second.method == method]
        assert all(set(g) == set(lrs) for g in tuned.grid)  # the first seed tries every rate
        assert list(reused.setting) == list(tuned.setting)  # later seeds reuse its choice
        assert all(len(g) == 1 for g in reused.grid)
        assert all(isinstance(h, History) and len(h) == 2 for h in tuned.history)
    assert all(set(g) == set(TINY.cs) for g in frame[frame.method == "probe"].grid)
    assert all(lg.shape == (len(setup.task.test), 10) for lg in frame.test_logits)
    assert frame[["test_accuracy", "valid_accuracy", "train_seconds"]].notna().all().all()


def test_fine_tuning_starts_from_the_probe(setup, monkeypatch):
    def no_training(network, model, inputs, task, rows, lr, steps, budget, seed, device):
        history = History()
        history.records.append({"epoch": 1, "valid_accuracy": 0.5, "valid_loss": 1.0})
        return history

    monkeypatch.setattr(vt, "train_network", no_training)
    runs = vt.transfer_methods(setup, TINY, ("probe", "fine_tune"))
    indices = per_class_subset(setup.task.pool_labels, 2, seed=0)
    probe, tuned = runs["probe"](indices, 0), runs["fine_tune"](indices, 0)
    np.testing.assert_allclose(tuned["test_logits"], probe["test_logits"], rtol=1e-4, atol=1e-4)


def test_a_tie_on_validation_accuracy_goes_to_the_lower_validation_loss(setup, monkeypatch):
    losses = {1e-3: 0.9, 3e-3: 0.4, 1e-2: 0.6}  # every rate ties at 0.5 accuracy

    def tied(network, model, inputs, task, rows, lr, steps, budget, seed, device):
        history = History()
        history.records.append({"epoch": 1, "valid_accuracy": 0.5, "valid_loss": losses[lr]})
        return history

    monkeypatch.setattr(vt, "train_network", tied)
    budget = replace(TINY, scratch_lrs=tuple(losses))
    run = vt.transfer_methods(setup, budget, ("scratch",))["scratch"]
    result = run(per_class_subset(setup.task.pool_labels, 1, seed=0), 0)
    assert result["setting"] == 3e-3 and result["grid"] == dict.fromkeys(losses, 0.5)


def test_unknown_or_impossible_methods_are_refused(setup):
    with pytest.raises(ValueError, match="finetune"):
        vt.transfer_methods(setup, TINY, ("finetune",))
    pretrained_only = replace(setup, scratch=None)
    with pytest.raises(ValueError, match="no from-scratch network"):
        vt.transfer_methods(pretrained_only, TINY, ("scratch",))
    assert list(vt.transfer_methods(pretrained_only, TINY, ("pixels", "probe"))) == [
        "pixels",
        "probe",
    ]


@pytest.mark.slow
def test_the_cifar_path_runs_every_method_on_a_fake_cifar(monkeypatch):
    from tests.vision.test_targets import fake_arrays

    arrays = fake_arrays(n_train=120, n_test=30)
    monkeypatch.setattr(targets, "load", lambda name, split=None: arrays[split])
    setup = targets.cifar_setup(image_size=32, pool_per_class=3, valid_per_class=2, test_size=20)
    budget = replace(
        TINY,
        train=replace(TINY.train, epochs=1),
        scratch_steps=2,
        fine_tune_steps=1,
        batch_size=4,
        fine_tune_lrs=(1e-4,),
    )
    frame = experiments.data_efficiency(
        vt.transfer_methods(setup, budget), setup.task.pool_labels, [1], [0], log=None
    )
    assert list(frame.method) == list(vt.METHODS)
    assert frame.test_accuracy.between(0, 1).all()


def test_each_network_takes_its_own_number_of_steps(setup):
    (scratch_counter, scratch_calls), (tuned_counter, tuned_calls) = (
        counting_augment(),
        counting_augment(),
    )
    counted = replace(
        setup,
        scratch=replace(setup.scratch, augment=scratch_counter),
        pretrained=replace(setup.pretrained, augment=tuned_counter),
    )
    budget = replace(TINY, scratch_lrs=(1e-2,), fine_tune_lrs=(1e-3,))
    runs = vt.transfer_methods(counted, budget, ("scratch", "fine_tune"))
    indices = per_class_subset(setup.task.pool_labels, 1, seed=0)
    runs["scratch"](indices, 0)
    runs["fine_tune"](indices, 0)
    assert (len(scratch_calls), len(tuned_calls)) == (TINY.scratch_steps, TINY.fine_tune_steps)


def test_the_tuning_report_flags_choices_at_the_end_of_their_grid():
    import pandas as pd

    runs = [
        ("scratch", 1, 0, 0.03, {0.003: 0.5, 0.01: 0.6, 0.03: 0.7}),  # best at the top end
        ("scratch", 10, 0, 0.003, {0.003: 0.9, 0.01: 0.9, 0.03: 0.8}),  # tied with the middle
        ("probe", 1, 0, 1.0, {0.1: 0.7, 1.0: 0.8, 10.0: 0.75}),
        ("fine_tune", 1, 1, 1e-4, {1e-4: 0.9}),  # a later seed reuses one rate
    ]
    frame = pd.DataFrame(
        [dict(method=m, per_class=n, seed=s, setting=c, grid=g) for m, n, s, c, g in runs]
    )
    report = vt.tuning_report(frame, seed=0)
    assert list(report.index) == [("scratch", 1), ("scratch", 10), ("probe", 1)]
    assert report["best only at an edge"].tolist() == [True, False, False]
    assert report.setting.tolist() == ["learning rate", "learning rate", "C"]
    assert report.loc[("scratch", 1), "chosen"] == 0.03
    assert report.loc[("probe", 1), "validation accuracy"] == "0.1: 0.700, 1: 0.800, 10: 0.750"


def test_whole_batch_reads_train_exactly_as_per_image_reads(setup):
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    from dlnb.data.loaders import Loaders
    from dlnb.train.loop import fit

    task, network = setup.task, setup.scratch
    inputs = network.prepare(task.images)
    rows = task.pool[per_class_subset(task.pool_labels, 2, seed=0)]
    torch.manual_seed(0)
    ours = network.build(10)
    theirs = network.build(10)
    theirs.load_state_dict(ours.state_dict())
    vt.train_network(network, ours, inputs, task, rows, 1e-2, 6, TINY, 3, torch.device("cpu"))
    labels = torch.from_numpy(task.labels[rows].astype(np.int64))
    sampler = RandomSampler(range(len(rows)), replacement=True, num_samples=3 * TINY.batch_size)
    per_image = DataLoader(TensorDataset(inputs[rows], labels), TINY.batch_size, sampler=sampler)
    valid = DataLoader(
        TensorDataset(inputs[task.valid], torch.from_numpy(task.labels[task.valid])), 256
    )
    config = TrainConfig(
        epochs=2, lr=1e-2, scheduler="onecycle", weight_decay=TINY.train.weight_decay, seed=3,
        progress=False, device="cpu",
    )  # fmt: skip
    fit(torch.nn.Sequential(network.augment, theirs), Loaders(per_image, valid), config)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
