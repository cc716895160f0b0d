"""The fine-tuning task: a page's field as one generated word."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.lm import fieldtask as ft
from dlnb.lm.corpus import pages_frame
from tests.lm.conftest import page


@pytest.fixture
def field_pages():
    packages = ["Ecdat"] * 6 + ["HistData"] * 4 + ["survival", "KMsurv"] * 2 + ["psych"] * 4
    packages += ["MASS"] * 3  # not one of the four fields
    texts = [page(f"Title {i}", 10 + i, f"About {p}.") for i, p in enumerate(packages)]
    return pages_frame(packages, [f"d{i}" for i in range(len(texts))], texts)


def test_the_prompt_asks_then_shows_the_page_start():
    prompt = ft.field_prompt("Ship Accidents", "word " * 100, max_chars=40)
    assert prompt.startswith(ft.QUESTION + "\nShip Accidents. word")
    assert prompt.endswith("\nField:") and len(prompt) <= len(ft.QUESTION) + 48
    assert ft.field_prompt("T", "d", question=False) == "T. d\nField:"


def test_the_task_splits_every_field_and_leaves_other_packages_out(field_pages):
    task = ft.field_task(field_pages, test_share=0.25, seed=0)
    (train, _), (test, y_test) = task["train"], task["test"]
    assert len(train) + len(test) == 18 and task["labels"] == ft.LABELS
    assert np.bincount(y_test, minlength=4).tolist() == [2, 1, 1, 1]
    assert not any("MASS" in p for p in train + test)
    assert set(train).isdisjoint(test)


def test_a_corpus_without_those_packages_is_an_error(pages):
    with pytest.raises(ValueError, match="No pages"):
        ft.field_task(pages)


def test_labels_must_be_single_distinct_tokens(tokenizer):
    ids = ft.label_tokens(tokenizer)
    assert len(set(ids)) == 4
    with pytest.raises(ValueError, match="one token each"):
        ft.label_tokens(tokenizer, ["economics", "data frame"])
    with pytest.raises(ValueError, match="share a token"):
        ft.label_tokens(tokenizer, ["economics", "economics"])
