"""The R documentation pages as a corpus, and questions whose answer sits on a known page.

    pages = load_pages()                         # one row per page: package, name, title, ...
    qs = make_questions(pages, missing=20, tune=40, seed=0)

A question asks how many rows a dataset has, naming the dataset by its page's title; the answer
(the fact) is the number on that page ("A data frame with 53940 rows and 10 variables"). Only pages
whose title is unique and whose format states a row count make questions. The questions are split
once: `tune` (choices such as the hybrid weight and the abstention threshold are made on them),
`test` (every reported number), and `missing`: their pages are left out of the index, so they are
questions with no relevant page, and the honest answer is "I don't know".
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dlnb.data.registry import load

_TITLE = re.compile(r"^(?P<title>\S[^\n]*)\n-{3,}[ \t]*$", re.MULTILINE)
_COUNT = re.compile(
    r"(?<![\d.,])(?P<n>\d{1,3}(?:,\d{3})+|\d+)\s+(?:rows|observations|cases|obs\.)", re.IGNORECASE
)
#: Question templates, picked in turn so the questions do not all read alike.
TEMPLATES = (
    'How many rows does the dataset "{title}" have?',
    'How many observations are in the data "{title}"?',
    "How many rows are in the R dataset about {title_lower}?",
)
SPLITS = ("tune", "test", "missing")


def section(text: str, name: str) -> str:
    """The first paragraph of section `name` ("Description", "Format"...) of a page, one line."""
    found = re.search(rf"^{name}\n~+\n\n(.*?)(?:\n\s*\n|\Z)", text, re.MULTILINE | re.DOTALL)
    return " ".join(found.group(1).split()) if found else ""


def page_title(text: str) -> str:
    """A page's title (the line underlined with dashes), without a final full stop."""
    found = _TITLE.search(text)
    return found.group("title").strip().rstrip(".") if found else ""


def row_count(text: str) -> int | None:
    """The number of rows a page states ("... with 53940 rows ..."), from its Format section first,
    then its Description; None when neither states one."""
    for name in ("Format", "Description"):
        found = _COUNT.search(section(text, name))
        if found:
            return int(found.group("n").replace(",", ""))
    return None


def passage(title: str, description: str, format_: str, max_chars: int = 400) -> str:
    """What the index holds and the model reads for a page: its title, format and description
    (the format first, so that a long description cannot push the row count out of it)."""
    return f"{title}.\n{format_}\n{description}"[:max_chars].strip()


def pages_frame(package, name, text) -> pd.DataFrame:
    """One row per page: package, name, title, description, format, rows (or <NA>), passage."""
    frame = pd.DataFrame({"package": package, "name": name, "text": text}).astype(str)
    frame["title"] = frame["text"].map(page_title)
    frame["description"] = frame["text"].map(lambda t: section(t, "Description"))
    frame["format"] = frame["text"].map(lambda t: section(t, "Format"))
    frame["rows"] = pd.array([row_count(t) for t in frame["text"]], dtype="Int64")
    frame["passage"] = [
        passage(t, d, f)
        for t, d, f in zip(frame.title, frame.description, frame.format, strict=True)
    ]
    return frame


def load_pages() -> pd.DataFrame:
    """The 757 verified R documentation pages (dataset `r-docs`) as a frame (see `pages_frame`)."""
    arrays = load("r-docs")
    return pages_frame(arrays["package"], arrays["name"], arrays["text"])


def question_for(title: str, i: int) -> str:
    """The question about page title `title`, with template `i` (mod the number of templates)."""
    template = TEMPLATES[i % len(TEMPLATES)]
    return template.format(title=title, title_lower=title[:1].lower() + title[1:])


def answerable(pages: pd.DataFrame) -> np.ndarray:
    """Indices of pages that make questions: a stated row count and a title no other page has."""
    titles = pages["title"].str.lower()
    unique = ~titles.duplicated(keep=False) & (titles.str.len() > 0)
    return np.flatnonzero((unique & pages["rows"].notna()).to_numpy())


def make_questions(pages: pd.DataFrame, *, missing: int, tune: int, seed: int = 0) -> pd.DataFrame:
    """Questions with known source pages, split into `tune`, `test` and `missing` (pages left out
    of the index). Columns: question, page (row of `pages`), fact (the row count), split."""
    pool = answerable(pages)
    if missing + tune >= len(pool):
        raise ValueError(
            f"Only {len(pool)} pages make questions: missing={missing} + tune={tune} leaves none "
            "to test on."
        )
    order = np.random.default_rng(seed).permutation(pool)
    split = np.array(["test"] * len(order), dtype=object)
    split[:missing], split[missing : missing + tune] = "missing", "tune"
    return pd.DataFrame(
        {
            "question": [question_for(pages.at[p, "title"], i) for i, p in enumerate(order)],
            "page": order,
            "fact": [str(int(pages.at[p, "rows"])) for p in order],
            "split": split,
        }
    )


def indexed_pages(pages: pd.DataFrame, questions: pd.DataFrame) -> np.ndarray:
    """Rows of `pages` that go into the index: all but the pages of the `missing` questions."""
    gone = set(questions.loc[questions["split"] == "missing", "page"].tolist())
    return np.array([i for i in range(len(pages)) if i not in gone], dtype=np.int64)


def split_pages(n: int, held_out: float = 0.1, seed: int = 0) -> dict[str, np.ndarray]:
    """Page rows split at random: {"train": rows, "held_out": rows}, each sorted."""
    if n < 2:
        raise ValueError("split_pages needs at least two pages.")
    order = np.random.default_rng(seed).permutation(n)
    n_out = min(n - 1, max(1, round(held_out * n)))
    return {"train": np.sort(order[n_out:]), "held_out": np.sort(order[:n_out])}


def text_splits(pages: pd.DataFrame, held_out: float = 0.1, seed: int = 0) -> dict[str, str]:
    """The pages' text cut by page (`split_pages`) into a training and a held-out text, for
    next-token models: no page is in both."""
    parts = split_pages(len(pages), held_out, seed)
    return {k: "\n\n".join(pages["text"].iloc[v]) for k, v in parts.items()}
