"""Decoding strategies measured: distinct n-grams across samples, repeated n-grams within them."""

from __future__ import annotations

import pytest

from dlnb.lm import decoding


def test_words_and_ngrams():
    assert decoding.words("The data, 53 rows!") == ["the", "data", "53", "rows"]
    assert decoding.ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]


def test_distinct_n_is_one_for_different_texts_and_low_for_copies():
    assert decoding.distinct_n(["a b c", "d e f"], 2) == 1.0
    assert decoding.distinct_n(["a b c"] * 4, 2) == pytest.approx(2 / 8)
    assert decoding.distinct_n(["a"], 2) == 0.0


def test_repeated_ngrams_counts_loops_within_a_text():
    assert decoding.repeated_ngrams("a b c d e", 3) == 0.0
    assert decoding.repeated_ngrams("the the the the the", 3) == pytest.approx(2 / 3)
    assert decoding.repeated_ngrams("a b", 3) == 0.0


def test_compare_decoding_measures_every_strategy(tiny_llm):
    prompt = "how many rows does the dataset have ?"
    table = decoding.compare_decoding(tiny_llm, prompt, samples=3, max_new_tokens=6, seed=0)
    assert table["strategy"].tolist() == list(decoding.STRATEGIES)
    assert list(table.columns) == ["strategy", "distinct-2", "repeated 3-grams", "first sample"]
    assert table[["distinct-2", "repeated 3-grams"]].stack().between(0, 1).all()
    greedy = table.set_index("strategy").loc["greedy"]
    sampled = table.set_index("strategy").loc["temperature 1.0"]
    assert greedy["distinct-2"] <= sampled["distinct-2"]  # three copies of one text
