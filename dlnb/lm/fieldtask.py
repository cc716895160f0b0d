"""A small supervised task for fine-tuning: which field an R dataset comes from, as a generated word.

Four R packages each cover one field: Ecdat (economics), HistData (history), survival and KMsurv
(medicine), psych (psychology). A prompt gives a page's title and the start of its description and
asks for the field; the answer is one word, one token of the model's vocabulary, and the label the
model scores highest among the four is its prediction ("classifying with a generated label").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: R package -> field (the label).
FIELDS = {
    "Ecdat": "economics",
    "HistData": "history",
    "survival": "medicine",
    "KMsurv": "medicine",
    "psych": "psychology",
}
LABELS = ("economics", "history", "medicine", "psychology")
QUESTION = "Which field is this R dataset from: economics, history, medicine or psychology?"


def field_prompt(title: str, description: str, max_chars: int = 100, question: bool = True) -> str:
    """The task's prompt for one page (the question, the page's first `max_chars` characters, then
    "Field:"); the model's next word is the field. `question=False` leaves the question out."""
    text = f"{title}. {description}"[:max_chars].strip()
    return (f"{QUESTION}\n" if question else "") + f"{text}\nField:"


def field_task(
    pages: pd.DataFrame,
    test_share: float = 0.3,
    seed: int = 0,
    max_chars: int = 100,
    question: bool = True,
) -> dict:
    """Prompts and label indices of the pages of `FIELDS`' packages, split by class at random.

    Returns {"train": (prompts, y), "test": (prompts, y), "labels": LABELS}; `max_chars` and
    `question` shape the prompts (see `field_prompt`).
    """
    rows = pages[pages["package"].isin(list(FIELDS))]
    if rows.empty:
        raise ValueError(f"No pages of the packages {sorted(FIELDS)}: is this the R docs corpus?")
    y = np.array([LABELS.index(FIELDS[p]) for p in rows["package"]])
    prompts = [
        field_prompt(t, d, max_chars, question)
        for t, d in zip(rows["title"], rows["description"], strict=True)
    ]
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(y), dtype=bool)
    for c in range(len(LABELS)):
        members = np.flatnonzero(y == c)
        is_test[rng.choice(members, size=round(test_share * len(members)), replace=False)] = True
    split = {"train": ~is_test, "test": is_test}
    return {name: ([prompts[i] for i in np.flatnonzero(m)], y[m]) for name, m in split.items()} | {
        "labels": LABELS
    }


def label_tokens(tokenizer, labels: Sequence[str] = LABELS) -> list[int]:
    """The token id of each label as the next word (" economics"); a label that is not one token
    of this vocabulary is a ValueError."""
    ids = []
    for label in labels:
        tokens = tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise ValueError(
                f"The label {label!r} is {len(tokens)} tokens for this tokenizer; pick labels that "
                "are one token each."
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"Two labels share a token: {dict(zip(labels, ids, strict=True))}.")
    return ids
