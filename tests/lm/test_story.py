"""Every sentence of the lesson, for each outcome: the effect holds, is within noise, reverses."""

from __future__ import annotations

import pandas as pd
import pytest

from dlnb import claims
from dlnb.lm import story

BETTER = [0.5, 0.52, 0.48, 0.5] * 5
SAME = [0.0, 0.01, -0.01, 0.0] * 5


def _effect(ours, baseline, **kwargs):
    return claims.paired_effect(ours, baseline, names=("ours", "theirs"), **kwargs)


def test_path_note_says_what_smoke_shrinks():
    smoke = story.path_note(True, 1, "cpu", rag_questions=20, seeds=3)
    assert "20 test questions" in smoke and "section 1's decoder" in smoke and "6 times" in smoke
    full = story.path_note(False, None, "cuda", rag_questions=None, seeds=5)
    assert "every test question" in full and "5 seeds" in full and "all cores" in full


def test_decoder_summary_warns_when_the_decoder_does_not_beat_counting():
    nll = {"unigram": 3.4, "bigram": 2.4, "decoder": 2.2}
    good = story.decoder_summary(
        _effect([1.0] * 4, [1.2, 1.25, 1.3, 1.22], higher_is_better=False), nll, 400, 15
    )
    assert "is better than" in good and "400 windows from 15" in good and "not yet" not in good
    assert "resamples pages" in good
    noisy = story.decoder_summary(_effect([1.0, 1.3, 0.9, 1.2], [1.1, 1.1, 1.1, 1.1]), nll, 400, 15)
    assert "within noise" in noisy and "not yet learned" in noisy


def test_kv_cache_summary_flags_a_cache_that_changes_the_tokens():
    check = {
        "same_tokens": True,
        "tokens_per_s_cache": 300.0,
        "tokens_per_s_no_cache": 200.0,
        "positions_cache": 10,
        "positions_no_cache": 50,
    }
    assert "the same tokens" in story.kv_cache_summary(check) and "1.5x" in story.kv_cache_summary(
        check
    )
    assert "a bug" in story.kv_cache_summary({**check, "same_tokens": False})


def test_bits_summary_uses_the_verdict():
    worse = story.bits_summary(
        _effect([3.0, 3.1, 3.2, 3.0], [2.0, 2.1, 2.0, 2.2], higher_is_better=False), 3.5
    )
    assert "is worse than" in worse and "3.50" in worse


def test_decoding_summary_names_the_measured_extremes():
    table = pd.DataFrame(
        {
            "strategy": ["greedy", "top-p 0.9"],
            "distinct-2": [0.25, 0.9],
            "repeated 3-grams": [0.6, 0.1],
        }
    )
    text = story.decoding_summary(table, 4, 40)
    assert "**greedy** (0.60" in text and "distinct-2 0.25" in text and "4 samples" in text
    flat = story.decoding_summary(table.assign(**{"repeated 3-grams": [0.0, 0.0]}), 4, 40)
    assert "no strategy repeated a 3-gram" in flat


def test_retrieval_summary_lists_every_effect():
    table = pd.DataFrame({"recall@1": [0.9, 0.95]}, index=["BM25", "hybrid"])
    effects = [_effect(BETTER, SAME), _effect(SAME, SAME)]
    text = story.retrieval_summary(table, effects, 0.65)
    assert "**hybrid** (0.950)" in text and text.count("\n- ") == 2 and "0.65" in text


def test_rag_summary_gives_wilson_intervals_and_says_the_comparison_is_by_construction():
    rates = {
        "with retrieval": {"correct": 1.0, "hallucinated": 0.0, "abstained": 0.0},
        "closed-book": {"correct": 0.0, "hallucinated": 1.0, "abstained": 0.0},
    }
    text = story.rag_summary(rates, 20, 1.0, 0.943, 387)
    assert "20 of 20 (95 % Wilson interval 0.84 to 1.00)" in text
    assert "0 of 20 (95 % Wilson interval 0.00 to 0.16)" in text
    assert "by construction" in text and "all 387 test questions" in text and "about 6%" in text
    worse = story.rag_summary(
        {"with retrieval": {**rates["with retrieval"], "correct": 0.5}}, 20, 0.5, 0.8, 100
    )
    assert "10 of 20 (95 % Wilson interval 0.30 to 0.70)" in worse and "about 20%" in worse


def test_abstain_summary_states_the_rule_its_catch_rate_and_that_it_holds_partly():
    text = story.abstain_summary(
        0.55, {"abstained": 5 / 12, "hallucinated": 0.5, "correct": 1 / 12}, 0.06, 12
    )
    assert "0.550" in text and "5 of 12 (95 % Wilson interval 0.19 to 0.68)" in text
    assert "50%" in text and "6%" in text and "right number, wrong page" in text
    assert "only partly" in text
    clean = story.abstain_summary(
        0.55, {"abstained": 1.0, "hallucinated": 0.0, "correct": 0.0}, 0.0, 12
    )
    assert "12 of 12" in clean and "wrong page:" not in clean


@pytest.mark.parametrize(
    ("lora", "full", "expected"),
    [
        (
            [0.70, 0.71, 0.70, 0.71, 0.70],
            [0.70, 0.70, 0.71, 0.70, 0.71],
            "reaches full fine-tuning",
        ),
        ([0.50, 0.52, 0.49, 0.51, 0.50], [0.70, 0.70, 0.71, 0.70, 0.71], "does **not** show"),
        ([0.50, 0.80, 0.60, 0.90, 0.40], [0.70, 0.70, 0.71, 0.70, 0.71], "too wide"),
    ],
)
def test_lora_summary_says_plainly_whether_lora_reaches_full(lora, full, expected):
    effect = claims.paired_effect(lora, full, names=("LoRA", "full"), band=0.05)
    checks = [claims.learned("LoRA", lora, 0.46), claims.learned("full", full, 0.46)]
    text = story.lora_summary(effect, 0.0069, 0.47, 0.46, checks, "SmolLM2-135M")
    assert expected in text and "0.69%" in text and "Full learned the task" in text


def test_lora_summary_flags_a_method_that_did_not_learn():
    effect = claims.paired_effect([0.46] * 3, [0.7, 0.71, 0.69], names=("LoRA", "full"), band=0.05)
    checks = [claims.learned("LoRA", [0.46] * 3, 0.46), claims.learned("full", [0.7] * 3, 0.46)]
    text = story.lora_summary(effect, 0.018, 0.3, 0.46, checks, "the decoder")
    assert "LoRA did not clearly learn the task" in text and "Full learned the task" in text
