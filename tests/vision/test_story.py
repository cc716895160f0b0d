"""dlnb.vision.story: the transfer lesson's sentences follow the verdicts of their effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb.claims import learned, paired_effect
from dlnb.vision import story

BASE = [0.60, 0.62, 0.58, 0.61, 0.59]


def effect(shift: float, noise: float = 0.005, names=("ours", "theirs")):
    """An effect of about `shift` over 5 seeds; `noise` sets how much the seeds disagree."""
    jitter = np.array([1.0, -1.0, 0.5, -0.5, 0.0]) * noise
    return paired_effect(np.add(BASE, shift + jitter), BASE, names=names)


HOLDS, LEVEL, REVERSES = effect(0.08), effect(0.0, noise=0.05), effect(-0.08)


def test_per_class_counts_in_singular_and_plural():
    assert story.per_class(1) == "1 labelled example per class"
    assert story.per_class(10, "image") == "10 images per class"


@pytest.mark.parametrize(
    "cached, how", [(True, "loaded from the cache"), (False, "trained now in 7 s")]
)
def test_the_source_summary_says_where_the_source_comes_from_and_what_it_cannot_name(cached, how):
    about = {"digits": [0, 1, 2, 3, 4], "train_images": 30596, "test_accuracy": 0.9969,
             "train_seconds": 7.2, "cached": cached}  # fmt: skip
    text = story.source_summary(about, tuple("56789"))
    assert how in text and "30,596" in text and "0.997" in text
    assert "5 outputs" in text and "cannot answer 5, 6, 7, 8, 9" in text


def test_the_layer_summary_follows_each_verdict():
    holds = story.layer_summary({"pretraining": HOLDS, "over_pixels": HOLDS, "depth": REVERSES}, 1)
    assert "carries over to digits it never saw" in holds and "is better than" in holds
    assert "The last hidden layer carries less" in holds and "Ours is worse" in holds
    assert "random weights" not in holds.split("\n\n")[1]  # no random control given, none said
    level = story.layer_summary({"pretraining": LEVEL, "over_pixels": LEVEL, "depth": LEVEL}, 1)
    assert "cannot tell the source's weights from random ones" in level
    assert "are level" in level and "carries over" not in level
    worse = story.layer_summary({"pretraining": REVERSES, "over_pixels": HOLDS, "depth": HOLDS}, 5)
    assert "worse for the new digits than random ones" in worse and "carries more than" in worse
    assert "5 labelled examples per class" in worse


@pytest.mark.parametrize(
    "random_depth, said_of_random",
    [
        (REVERSES, "part of the drop comes from the architecture itself"),
        (LEVEL, "this run cannot tell the two layers apart"),
        (HOLDS, "With random weights the last hidden layer carries more"),
    ],
)
def test_the_depth_effect_is_read_against_random_weights_of_the_same_layers(
    random_depth, said_of_random
):
    effects = {"pretraining": HOLDS, "over_pixels": HOLDS, "depth": REVERSES,
               "random_depth": random_depth, "pretraining_fc2": LEVEL}  # fmt: skip
    text = story.layer_summary(effects, 1)
    assert said_of_random in text and "one random initialisation" in text
    assert f"at the convolutions {HOLDS.diff:+.3f}" in text
    assert "at the last hidden layer, ours and theirs are within noise" in text
    assert "shaped to tell" not in text


def scratch_check(scores):
    return learned("LeNet-5 from scratch (2/class)", scores, 0.2, margin=0.05)


LEARNED, NOT_LEARNED = scratch_check([0.7, 0.75, 0.72]), scratch_check([0.2, 0.22, 0.21])


def test_the_transfer_summary_states_each_size_from_its_verdict():
    text = story.transfer_summary(
        {1: HOLDS, 5: LEVEL, 20: REVERSES}, {}, {"scratch": LEARNED}, smoke=False
    )
    lines = text.splitlines()
    assert lines[0].startswith("- **1 labelled example per class: pretraining pays.**")
    assert "no difference resolved." in lines[1] and "unresolved in smoke" not in text
    assert "pretraining costs accuracy" in lines[2] and "did not learn" not in text
    assert "95 % CI" in lines[0]


def test_the_transfer_summary_marks_what_smoke_leaves_unresolved_and_states_fine_tuning():
    text = story.transfer_summary({2: LEVEL}, {2: HOLDS}, {"scratch": LEARNED}, smoke=True)
    assert "no difference resolved (unresolved in smoke: the full profile" in text
    assert (
        "**Fine-tuning against the probe, 2 labelled examples per class:** Ours is better" in text
    )
    resolved = story.transfer_summary({2: HOLDS}, {}, {"scratch": LEARNED}, smoke=True)
    assert "unresolved in smoke" not in resolved


def test_the_baselines_summary_gives_one_line_per_check():
    text = story.baselines_summary({"pixels": NOT_LEARNED, "scratch": LEARNED})
    lines = text.splitlines()
    assert len(lines) == 2 and "did NOT learn" in lines[0] and " learned: " in lines[1]


def test_a_baseline_that_did_not_learn_is_said_first():
    text = story.transfer_summary(
        {2: HOLDS}, {}, {"pixels": NOT_LEARNED, "scratch": LEARNED}, smoke=False
    )
    first = text.splitlines()[0]
    assert "did not learn" in first and "prove nothing" in first
    assert "LeNet-5 from scratch (2/class)" in first


def tuning(rows):
    frame = pd.DataFrame(
        rows, columns=["method", "per_class", "setting", "chosen", "best only at an edge"]
    )
    return frame.set_index(["method", "per_class"])


def test_the_tuning_summary_names_choices_at_the_end_of_their_grid_and_whom_they_favour():
    inside = tuning([("scratch", 2, "learning rate", 0.01, False), ("probe", 2, "C", 1.0, False)])
    assert "lies inside its grid" in story.tuning_summary(inside, ("probe", "fine_tune"))
    edges = tuning(
        [("scratch", 2, "learning rate", 0.03, True), ("fine_tune", 2, "learning rate", 3e-3, True)]
    )
    text = story.tuning_summary(edges, ("probe", "fine_tune"))
    assert "LeNet-5 from scratch, 2 labelled examples per class" in text and "(0.03)" in text
    assert "this baseline may be stronger than measured" in text
    assert "fine-tuned" in text and "only the pretrained side can lose by this" in text


def test_the_longer_training_summary_follows_the_verdict_and_names_the_strongest_baseline():
    picked = ("longer", "longer", "pixels")
    still = story.longer_training_summary(effect(0.05), picked)
    assert still.startswith("**The baseline was still improving.**")
    assert "strongest baseline" in still and "longer on 2 of 3, pixels on 1 of 3." in still
    enough = story.longer_training_summary(LEVEL, ("longer",))
    assert enough.startswith("Twice the steps did not change the baseline measurably.")
    assert "this run cannot tell them apart" in enough and "longer on 1 of 1." in enough
    worse = story.longer_training_summary(REVERSES, picked)
    assert "made the baseline worse" in worse


def test_the_far_summary_states_the_effects_and_what_they_cannot_separate():
    text = story.far_summary({"near_vs_far": HOLDS, "far_vs_pixels": LEVEL}, 1, 48)
    assert "is better than" in text and "within noise" in text
    assert "48 px" in text and "cannot say which of those differences is the reason" in text


def test_the_mistakes_summary_counts_and_ranks_confusions():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([1, 1, 0, 1, 2, 2, 2, 0])
    text = story.mistakes_summary(y_true, y_pred, ["5", "6", "7"])
    assert text.startswith("4 of 8 test images are misclassified")
    assert "5 → 6 (2 of 3)" in text and text.index("5 → 6") < text.index("6 → 7")
    assert story.mistakes_summary(y_true, y_true, ["5", "6", "7"]).startswith("All 8 test")


def test_the_folder_summary_follows_the_baseline_check():
    good = learned("the folder's LeNet-5", [0.97, 0.93, 0.87], 0.43, margin=0.1)
    text = story.folder_summary(good, 10, 0.0)
    assert text.startswith("With 10 images per class, the folder's LeNet-5 learned: 0.923")
    assert "exactly the trained one's probabilities" in text
    bad = learned("the folder's LeNet-5", [0.45, 0.5, 0.4], 0.43, margin=0.1)
    text = story.folder_summary(bad, 10, 2e-7)
    assert "did NOT learn enough" in text and "by at most 2.0e-07" in text


def test_said_capitalises_the_sentence_it_opens():
    assert story.said(HOLDS).startswith("Ours is better than theirs:")


def test_the_run_note_says_what_smoke_cannot_resolve():
    smoke = story.run_note("smoke", "cpu", [0, 1, 2], [2], range(10), [1, 5])
    assert "3 seeds at 2 per class" in smoke and "10 seeds at 1, 5" in smoke
    assert "unresolved here" in smoke and "full profile" in smoke
    full = story.run_note("full", "cuda", range(5), [1, 2, 5], range(20), [1, 5])
    assert "unresolved" not in full and "5 seeds at 1, 2, 5 per class" in full
