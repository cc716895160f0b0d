"""Pages parsed into title, sections and row counts; questions with known pages, split once."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.lm import corpus
from tests.lm.conftest import PAGE


def test_a_page_parses_into_title_sections_and_row_count():
    assert corpus.page_title(PAGE) == "Prices of 50,000 round cut diamonds"
    assert corpus.section(PAGE, "Format") == "A data frame with 53,940 rows and 10 variables"
    assert corpus.section(PAGE, "Description").startswith("A dataset containing the prices")
    assert corpus.section(PAGE, "Source") == ""
    assert corpus.row_count(PAGE) == 53940  # the Format's count, not the description's 54,000


def test_row_count_falls_back_to_the_description_and_may_be_missing():
    text = "T\n---\n\nDescription\n~~~~\n\nThere are 120 cases in all.\n\nFormat\n~~~\n\nA list.\n"
    assert corpus.row_count(text) == 120
    assert corpus.row_count("T\n---\n\nFormat\n~~~\n\nA list.\n") is None


def test_the_passage_puts_the_format_before_a_long_description():
    text = corpus.passage("Title", "word " * 200, "A data frame with 5 rows", max_chars=60)
    assert "5 rows" in text and len(text) <= 60


def test_only_unique_titles_with_a_count_make_questions(pages):
    kept = corpus.answerable(pages)
    titles = pages["title"].iloc[kept].tolist()
    assert "Data on topic a" not in titles  # two pages share it
    assert "No count here" not in titles
    assert len(kept) == 9


def test_questions_are_split_once_and_carry_their_fact(pages):
    qs = corpus.make_questions(pages, missing=2, tune=3, seed=0)
    assert qs["split"].value_counts().to_dict() == {"test": 4, "tune": 3, "missing": 2}
    assert qs["page"].is_unique
    for row in qs.itertuples():
        assert row.fact == str(pages.at[row.page, "rows"])
        assert pages.at[row.page, "title"].lower()[1:] in row.question.lower()
    assert qs.equals(corpus.make_questions(pages, missing=2, tune=3, seed=0))


def test_too_many_held_back_questions_is_an_error(pages):
    with pytest.raises(ValueError, match="leaves none"):
        corpus.make_questions(pages, missing=5, tune=4)


def test_the_index_leaves_out_the_missing_pages(pages):
    qs = corpus.make_questions(pages, missing=2, tune=3, seed=1)
    indexed = corpus.indexed_pages(pages, qs)
    gone = set(qs.loc[qs["split"] == "missing", "page"])
    assert gone.isdisjoint(indexed) and len(indexed) == len(pages) - 2


def test_pages_split_into_disjoint_train_and_held_out_text(pages):
    parts = corpus.split_pages(len(pages), held_out=0.25, seed=0)
    assert len(parts["held_out"]) == 3
    assert np.intersect1d(parts["train"], parts["held_out"]).size == 0
    assert len(parts["train"]) + len(parts["held_out"]) == len(pages)
    texts = corpus.text_splits(pages, held_out=0.25, seed=0)
    first = pages["text"].iloc[parts["held_out"][0]]
    assert first in texts["held_out"] and first not in texts["train"]
    with pytest.raises(ValueError, match="two pages"):
        corpus.split_pages(1)
