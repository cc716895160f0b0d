"""dlnb.vision.compare: tables and effects read off the transfer experiment, the longer-training
control and the source network's guesses on the new classes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dlnb.vision import compare
from dlnb.vision import transfer as vt
from dlnb.vision.targets import Network, Setup, Task

pytestmark = pytest.mark.usefixtures("single_thread")


def toy_task(n_test: int = 20) -> Task:
    """5 classes: 10 pool images, 5 validation, `n_test` test (labels 0..4 in turn)."""
    n = 15 + n_test
    labels = np.arange(n) % 5
    images = np.zeros((n, 28, 28), np.uint8)
    rows = np.arange(n)
    return Task("toy", images, labels, rows[:10], rows[10:15], rows[15:], tuple("56789"))


def frame_of(scores: dict) -> pd.DataFrame:
    """size -> method -> (test scores per seed, validation mean)."""
    rows = []
    for size, methods in scores.items():
        for method, (tests, valid) in methods.items():
            rows += [
                {"method": method, "per_class": size, "seed": s, "test_accuracy": t,
                 "valid_accuracy": valid, "setting": 0.01}
                for s, t in enumerate(tests)
            ]  # fmt: skip
    return pd.DataFrame(rows)


SCORES = {
    2: {
        "pixels": ((0.60, 0.62, 0.58), 0.6),
        "scratch": ((0.70, 0.74, 0.72), 0.7),
        "probe": ((0.75, 0.80, 0.78), 0.8),
        "fine_tune": ((0.85, 0.86, 0.84), 0.75),  # best on test, not on validation
    },
    10: {
        "pixels": ((0.80, 0.82, 0.81), 0.8),
        "scratch": ((0.93, 0.94, 0.92), 0.93),
        "probe": ((0.90, 0.91, 0.89), 0.9),
        "fine_tune": ((0.93, 0.95, 0.93), 0.94),
    },
}


def test_the_results_table_gives_means_and_95_percent_intervals():
    table = compare.results_table(frame_of(SCORES))
    row = table.loc[(2, "LeNet-5 from scratch")]
    assert row["mean"] == pytest.approx(0.72) and row["seeds"] == 3
    assert row["95% low"] == pytest.approx(0.72 - 4.302653 * 0.02 / 3**0.5, abs=1e-6)
    assert list(table.index.get_level_values("method")[:4]) == [
        "raw pixels", "LeNet-5 from scratch", "linear probe", "fine-tuned",
    ]  # fmt: skip


def test_transfer_effects_pick_methods_on_validation_and_check_the_baselines():
    effects = compare.transfer_effects(frame_of(SCORES), toy_task())
    two, ten = effects.headline[2], effects.headline[10]
    assert effects.best == {2: "probe", 10: "fine_tune"}
    assert (two.ours, two.baseline) == ("linear probe", "LeNet-5 from scratch")
    assert two.diff == pytest.approx(0.7766667 - 0.72, abs=1e-6) and two.verdict == "better"
    assert (ten.ours, ten.baseline) == ("fine-tuned", "LeNet-5 from scratch")
    assert ten.verdict == "within noise"
    assert effects.fine_tune[2].diff == pytest.approx(0.85 - 0.7766667, abs=1e-6)
    checks = effects.checks
    assert [c.name for c in checks.values()] == [
        "raw pixels (2/class)", "LeNet-5 from scratch (2/class)",
    ]  # fmt: skip
    assert all(c.learned for c in checks.values()) and checks["pixels"].reference == 0.2


def test_the_constant_rate_is_the_share_of_the_most_frequent_test_class():
    task = toy_task()
    task.labels[task.test[:3]] = 4  # class 4 now has 7 of 20 test images
    assert compare.constant_rate(task) == pytest.approx(7 / 20)


def test_a_baseline_at_the_majority_rate_did_not_learn():
    scores = {2: {**SCORES[2], "scratch": ((0.21, 0.2, 0.22), 0.2)}}
    checks = compare.baseline_checks(frame_of(scores), toy_task(), 2)
    assert {m: c.learned for m, c in checks.items()} == {"pixels": True, "scratch": False}


def test_longer_training_pairs_twice_the_steps_with_the_run_it_repeats(monkeypatch):
    seen = {}

    def fake_methods(setup, budget, methods):
        seen["budget"] = budget
        # validation 0.7 on seed 0 (a tie with the 300-step run), 0.5 on seed 1, 0.9 on seed 2
        valid = {0: 0.7, 1: 0.5, 2: 0.9}
        return {
            "scratch": lambda indices, seed: {
                "test_accuracy": 0.74 + 0.01 * seed, "valid_accuracy": valid[seed],
            }
        }  # fmt: skip

    monkeypatch.setattr(compare, "transfer_methods", fake_methods)
    frame = frame_of(SCORES)
    budget = replace(vt.Budget(), scratch_steps=300, scratch_lrs=(0.001, 0.01, 0.1))
    setup = Setup(toy_task(), Network("n", nn.Identity, torch.as_tensor), None, "none")
    result = compare.longer_training(setup, budget, frame, 2, [0, 1, 2])
    change, against = result.change, result.against
    assert seen["budget"].scratch_steps == 600 and seen["budget"].scratch_lrs == (0.01,)
    assert (change.ours, change.baseline, change.n) == (
        "LeNet-5 from scratch with 600 steps", "with 300 steps", 3,
    )  # fmt: skip
    assert change.per_pair == pytest.approx((0.04, 0.01, 0.04))  # 0.74, 0.75, 0.76 - scratch
    longer, shorter = "LeNet-5 from scratch with 600 steps", "LeNet-5 from scratch with 300 steps"
    # seed 0: tie at 0.7 -> the longer run; seed 1: the 300-step run (0.7 > 0.6 pixels > 0.5)
    assert result.picked == (longer, shorter, longer)
    assert against.ours == "fine-tuned" and against.baseline == "the strongest baseline"
    # fine-tuned (0.85, 0.86, 0.84) - picked (0.74, scratch 0.74, 0.76)
    assert against.per_pair == pytest.approx((0.11, 0.12, 0.08))


class Fixed(nn.Module):
    """A 'source' that answers class (label of the image's first pixel) among 3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x[:, 0, 0, 0].long() % 3, 3).float()


def test_the_source_guesses_are_shares_per_true_class():
    task = toy_task(n_test=10)
    task.images[task.test, 0, 0] = np.where(task.labels[task.test] < 2, 0, 2)
    setup = Setup(task, Network("src", lambda k: Fixed(), lambda im: torch.as_tensor(im)[:, None]),
                  None, "toy")  # fmt: skip
    guesses = compare.source_guesses(Fixed(), setup, ["0", "1", "2"])
    assert guesses.shape == (5, 3) and list(guesses.index) == list("56789")
    np.testing.assert_allclose(guesses.sum(axis=1), 1.0)
    assert guesses.loc["5", "0"] == 1.0 and guesses.loc["9", "2"] == 1.0


def test_the_transfer_plot_has_one_labelled_line_per_method():
    fig, ax = compare.plot_transfer(frame_of(SCORES), chance=0.2)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["best constant guess", "raw pixels", "LeNet-5 from scratch", "linear probe",
                      "fine-tuned"]  # fmt: skip
    assert ax.get_xlabel() == "labelled examples per class" and ax.get_ylabel() == "test accuracy"
