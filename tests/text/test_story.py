"""Notebook 05's sentences: each outcome (holds, within noise, reverses, a baseline that did not
learn, a network that did not fit) on small synthetic runs, and the records the gates read."""

import numpy as np
import pandas as pd
import pytest

from dlnb.text import story

FT, TFIDF, SCRATCH, PROBE = "fine-tuned encoder", "TF-IDF", "from-scratch network", "frozen probe"


def _curve(scores: dict[str, list[float]], train: dict[str, list[float]] | None = None, size=32):
    train = train or {}
    return pd.DataFrame(
        [
            {
                "method": method,
                "per_class": size,
                "seed": seed,
                "accuracy": value,
                "train_accuracy": train.get(method, [np.nan] * len(values))[seed],
            }
            for method, values in scores.items()
            for seed, value in enumerate(values)
        ]
    )


HOLDS = {
    TFIDF: [0.65, 0.66, 0.69, 0.70],
    PROBE: [0.72, 0.74, 0.76, 0.77],
    SCRATCH: [0.68, 0.66, 0.685, 0.66],
    FT: [0.73, 0.77, 0.75, 0.80],
}
FITTED = {SCRATCH: [1.0, 1.0, 1.0, 1.0], FT: [1.0, 0.98, 1.0, 1.0]}


def test_the_claim_holds_when_both_baselines_learned_and_both_intervals_exclude_zero():
    claims = story.transfer_claims(_curve(HOLDS, FITTED), 32, 0.5)
    text = claims.markdown("smoke")
    assert claims.headline_holds()
    assert "fine-tuned encoder is better than TF-IDF" in text
    assert "fine-tuned encoder is better than from-scratch network" in text
    assert "**What the pretrained weights buy**: with 32 labelled texts per class" in text
    assert "from-scratch network learned" in text and "did NOT learn" not in text
    assert "fits its training texts (last-epoch training accuracy at least 1.00" in text
    assert "Fine-tuning and the frozen probe cannot be told apart here" in text  # +0.013 +- more
    assert "Unresolved in smoke" not in text


def test_an_effect_within_noise_is_said_and_marked_unresolved_in_smoke_only():
    noisy = dict(HOLDS, **{FT: [0.70, 0.64, 0.74, 0.69]})  # +0.05, -0.02, +0.05, -0.01 over TF-IDF
    claims = story.transfer_claims(_curve(noisy), 32, 0.5)
    assert claims.effects[TFIDF].verdict == "within noise" and not claims.headline_holds()
    smoke, full = claims.markdown("smoke"), claims.markdown("full")
    assert "fine-tuned encoder and TF-IDF are within noise of each other" in smoke
    assert "Unresolved in smoke: the full profile" in smoke and "Unresolved" not in full
    assert "**This run does not show that fine-tuned encoder beats" in full


def test_a_reversed_effect_reads_worse_and_the_probe_ahead_is_said():
    reversed_ = dict(HOLDS, **{FT: [0.60, 0.61, 0.64, 0.645]})
    text = story.transfer_claims(_curve(reversed_), 32, 0.5).markdown()
    assert "fine-tuned encoder is worse than TF-IDF" in text
    assert "The frozen probe is ahead of fine-tuning here" in text
    assert "**This run does not show" in text


def test_a_baseline_at_the_majority_rate_did_not_learn_and_its_comparison_proves_nothing():
    broken = dict(HOLDS, **{SCRATCH: [0.50, 0.52, 0.49, 0.51]})
    claims = story.transfer_claims(_curve(broken), 32, 0.5)
    text = claims.markdown("smoke")
    assert claims.effects[SCRATCH].verdict == "better" and not claims.headline_holds()
    assert "from-scratch network did NOT learn enough to count as a baseline" in text
    assert "from-scratch network did not learn, so this comparison proves nothing." in text
    assert "**This run does not show" in text


def test_a_network_that_did_not_fit_its_training_texts_is_flagged():
    underfit = {SCRATCH: [0.8, 1.0, 1.0, 1.0], FT: [1.0, 1.0, 1.0, 1.0]}
    text = story.transfer_claims(_curve(HOLDS, underfit), 32, 0.5).markdown()
    assert "from-scratch network did not fit its training texts (last-epoch training" in text
    assert "down to 0.80" in text and "may be under-trained" in text


def test_record_writes_interval_bounds_verdicts_and_learned_flags(monkeypatch):
    seen = {}
    monkeypatch.setattr(story, "record", lambda name, value: seen.__setitem__(name, value))
    monkeypatch.setattr("dlnb.claims.record", lambda name, value: seen.__setitem__(name, value))
    story.transfer_claims(_curve(HOLDS, FITTED), 32, 0.5).record()
    assert seen["finetuned_minus_tfidf_low"] > 0 and seen["finetuned_minus_scratch_low"] > 0
    assert (
        seen["finetuned_minus_tfidf_verdict"] == "better" and seen["finetuned_minus_probe_n"] == 4
    )
    assert seen["scratch_learned"] is True and seen["tfidf_learned"] is True
    assert (
        seen["scratch_min_train_accuracy"] == 1.0 and seen["finetuned_min_train_accuracy"] == 0.98
    )
    assert seen["finetuned_accuracy"] == pytest.approx(np.mean(HOLDS[FT]))


def test_verdicts_by_size_gives_one_row_per_size_and_baseline():
    curve = pd.concat([_curve(HOLDS, size=32), _curve({**HOLDS, FT: HOLDS[TFIDF]}, size=512)])
    table = story.verdicts_by_size(curve)
    assert table["per class"].tolist() == [32, 32, 512, 512]
    assert table["verdict"].tolist()[:2] == ["better", "better"]
    assert table.loc[2, "difference"] == 0.0 and table.loc[2, "verdict"] == "within noise"


def test_error_summary_gives_recall_per_class_and_the_most_frequent_error():
    text = story.error_summary([0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 0], ("negative", "positive"))
    assert text.startswith("Accuracy 0.500. Recall per class: negative 0.33, positive 0.67.")
    assert "true *negative* predicted *positive* (2 of 3 errors)" in text
    assert "No test text is misclassified" in story.error_summary([0, 1], [0, 1], ("a", "b"))


def test_own_data_summary_says_whether_the_model_commits():
    low = story.own_data_summary(0.5, 0.4, 0.5, 12, 0.55, 2)
    assert "one epoch on a few dozen texts has barely moved the new head" in low
    assert "one standard error on 12 texts is up to 0.14" in low
    assert "it has started to commit" in story.own_data_summary(0.9, 0.9, 0.5, 12, 0.8, 2)
    assert "barely moved" in story.own_data_summary(0.5, 0.4, 0.34, 12, 0.6, 3)  # < 0.667


def test_confidence_summary_splits_by_annotator_agreement():
    text = story.confidence_summary([1, 0, 1, 1], [1.0, 1.0, 0.6, np.nan])
    assert "fully agreed (confidence 1.0): 0.500 (2 texts)" in text
    assert "lower confidence: 1.000 (1 texts); confidence unknown: 1 texts" in text
    assert "not known" in story.confidence_summary([1], [np.nan])


def test_order_task_summary_separates_chance_from_a_solved_task():
    rng = np.random.default_rng(0)
    solved = np.ones(1000, dtype=bool)
    solved[:5] = False
    blind = rng.random(1000) < 0.5
    text, effects = story.order_task_summary(
        {"with positions": solved, "bag of words": blind}, ours="with positions"
    )
    assert (
        "with positions: 0.995 (95 % CI 0.988 to 0.998, 1000 test sequences), above chance" in text
    )
    assert "bag of words: " in text and "at chance: its interval contains 0.5" in text
    assert (
        effects["bag of words"].verdict == "better" and effects["bag of words"].unit == "examples"
    )
    assert "with positions is better than bag of words" in text
    with pytest.raises(ValueError, match="not one of the models"):
        story.order_task_summary({"a": solved}, ours="b")


def test_order_task_summary_says_when_the_encoder_is_no_better():
    same = np.random.default_rng(1).random(1000) < 0.5
    text, effects = story.order_task_summary({"ours": same, "other": same.copy()}, ours="ours")
    assert effects["other"].verdict == "within noise" and "within noise" in text


def test_error_summary_says_when_the_model_is_sure_of_its_wrong_answers():
    probs = np.array([[0.99, 0.01], [0.02, 0.98], [0.96, 0.04], [0.61, 0.39]])
    text = story.error_summary([0, 0, 1, 0], [0, 1, 0, 0], ("negative", "positive"), probs)
    assert "0.80 on its right answers and 0.97 on its wrong ones: it is overconfident" in text
    calm = np.array([[0.99, 0.01], [0.4, 0.6], [0.54, 0.46], [0.89, 0.11]])
    text = story.error_summary([0, 0, 1, 0], [0, 1, 0, 0], ("negative", "positive"), calm)
    assert text.endswith("0.94 on its right answers and 0.57 on its wrong ones.")
