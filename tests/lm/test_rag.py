"""Answers scored against the page's fact; abstention below a calibrated similarity."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.lm import rag


def test_numbers_are_read_with_thousands_separators():
    assert rag.numbers("It has 53,940 rows and 10 columns.") == [53940, 10]
    assert rag.numbers("no digits") == []


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ("53940.", "correct"),
        ("It has 53,940 rows", "correct"),
        ("540 rows", "hallucinated"),
        ("I don't know.", "abstained"),
        ("I do not know, perhaps 12", "hallucinated"),
        ("", "abstained"),
        ("The diamonds dataset.", "hallucinated"),
    ],
)
def test_each_answer_gets_one_outcome(answer, outcome):
    assert rag.score_answer(answer, "53940") == outcome


def test_rates_and_held_back_answers():
    outcomes = rag.answer_table(["7", "8", "9"], ["7", "1", "9"], answered=[True, True, False])
    assert outcomes == ["correct", "hallucinated", "abstained"]
    assert rag.rates(outcomes) == pytest.approx(
        {"correct": 1 / 3, "abstained": 1 / 3, "hallucinated": 1 / 3}
    )
    with pytest.raises(ValueError, match="Unknown outcomes"):
        rag.rates(["right"])
    with pytest.raises(ValueError, match="same length"):
        rag.answer_table(["7"], ["7", "8"])


def test_the_abstainer_keeps_the_calibrated_share_answered():
    tune = np.linspace(0.5, 0.9, 101)
    abstainer = rag.Abstainer.calibrate(tune, keep=0.95)
    assert abstainer.answers(tune).mean() == pytest.approx(0.95, abs=0.011)
    assert abstainer.answers([0.1, 0.95]).tolist() == [False, True]
    with pytest.raises(ValueError, match="tuning questions"):
        rag.Abstainer.calibrate([])


def test_prompts_hold_the_page_or_nothing(tokenizer):
    with_page = rag.rag_prompt(tokenizer, "how many rows ?", "diamonds", "53940 rows")
    closed = rag.closed_book_prompt(tokenizer, "how many rows ?")
    assert "53940 rows" in with_page and "'diamonds'" in with_page
    assert "53940" not in closed and "how many rows ?" in closed
    assert with_page.endswith("<|im_start|>assistant\n")


def test_no_page_view_relabels_a_lucky_number():
    import pandas as pd

    table = pd.DataFrame(
        {
            "question": ["a", "b"],
            "answer": ["5", "no"],
            "outcome": ["correct", "abstained"],
            "x": [1, 2],
        }
    )
    view = rag.no_page_view(table)
    assert view["outcome"].tolist() == ["right number, wrong page", "abstained"]
    assert list(view.columns) == ["question", "answer", "outcome"]


def test_rag_records_gate_on_wilson_intervals():
    out = rag.rag_records({"rag": ["correct"] * 20, "closed": ["hallucinated"] * 20})
    assert out["rag_correct"] == 1.0 and 0.83 < out["rag_correct_low"] < 0.84
    assert 0.16 < out["closed_correct_high"] < 0.17 and out["rag_beats_closed"] is True
    close = rag.rag_records(
        {"rag": ["correct"] * 3 + ["hallucinated"], "closed": ["correct", "abstained"]}
    )
    assert close["rag_beats_closed"] is False
