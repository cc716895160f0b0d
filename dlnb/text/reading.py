"""Your own texts: `from_files` reads a CSV/TSV file, a DataFrame or a folder of .txt files per
class into a `TextData` (texts, labels, label names and a test split) the text path trains on."""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TextData", "from_files", "read_text_table"]

TSV_SUFFIXES = (".tsv", ".tab")


@dataclass
class TextData:
    """Training texts and class ids, the class names, and the test texts and class ids."""

    texts: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]
    test_texts: list[str]
    test_labels: np.ndarray

    @property
    def train(self) -> tuple[list[str], np.ndarray]:
        """The training split as the (texts, labels) pair `text_loaders` takes."""
        return self.texts, self.labels

    @property
    def test(self) -> tuple[list[str], np.ndarray]:
        """The test split as a (texts, labels) pair."""
        return self.test_texts, self.test_labels

    def __len__(self) -> int:
        return len(self.texts) + len(self.test_texts)


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 (a byte-order mark dropped), else latin-1 with a warning that says so."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        warnings.warn(
            f"{path} is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "it was read as latin-1, which maps every byte but may show accents wrongly. "
            "Re-save the file as UTF-8 if it has another encoding.",
            stacklevel=3,
        )
        return raw.decode("latin-1")


def _delimiter(path: Path, content: str) -> str:
    """Tab for .tsv/.tab (or a .csv whose header has tabs and no commas), else sniffed."""
    header = content.split("\n", 1)[0]
    if path.suffix.lower() in TSV_SUFFIXES or ("\t" in header and "," not in header):
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    try:
        return csv.Sniffer().sniff(content[:4096], delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def read_text_table(path: str | Path) -> pd.DataFrame:
    """A CSV/TSV file as a DataFrame of strings: quoted fields may hold the delimiter, quotes
    ("" inside quotes) and newlines, any field a bare carriage return; the encoding and the
    delimiter are found as `from_files` says."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The text file {path} does not exist.")
    content = _decode(path.read_bytes(), path)
    sep = _delimiter(path, content)
    # Lines end with \n (or \r\n): a bare \r is then text inside a field (writers such as
    # pandas leave it unquoted), not a line break.
    ends = {"lineterminator": "\n"} if "\n" in content else {}
    content = content.replace("\r\n", "\n") if ends else content
    try:
        frame = pd.read_csv(io.StringIO(content), sep=sep, dtype=str, keep_default_na=False, **ends)
    except pd.errors.ParserError as exc:
        raise ValueError(
            f"{path} could not be read as {'tab' if sep == chr(9) else repr(sep)}-separated "
            f"values ({exc}). A field that opens a quote must close it; a text with a literal "
            'quote inside a quoted field doubles it ("").'
        ) from exc
    if frame.empty:
        raise ValueError(f"The text file {path} has a header but no rows.")
    return frame


def _pairs(frame: pd.DataFrame, text: str, label: str, what: str) -> tuple[list[str], list[str]]:
    """Texts and labels of a table, with blank or missing ones reported by row number."""
    for column in (text, label):
        if column not in frame.columns:
            raise ValueError(
                f"The {what} has no column {column!r}; its columns are: "
                f"{', '.join(map(str, frame.columns))}. Name the columns with text= and label=."
            )
    texts = frame[text].where(frame[text].notna(), "").astype(str)
    labels = frame[label].where(frame[label].notna(), "").astype(str).str.strip()
    blank_text = [i + 1 for i, t in enumerate(texts) if not t.strip()]
    blank_label = [i + 1 for i, t in enumerate(labels) if not t]
    for rows, kind in ((blank_text, "texts"), (blank_label, "labels")):
        if rows:
            raise ValueError(
                f"The {what} has blank or missing {kind} in rows {rows[:10]}"
                f"{' ...' if len(rows) > 10 else ''} ({len(rows)} in all; row 1 is the first "
                "after the header): drop or fill them, e.g. pass df.dropna() as a DataFrame."
            )
    return texts.str.strip().tolist(), labels.tolist()


def _read_folder(root: Path) -> pd.DataFrame:
    """root/<class>/*.txt as a DataFrame of text and label (classes sorted by folder name)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = len(list(root.glob("*.txt")))
        raise ValueError(
            f"{root} has no class folders{f' ({loose} .txt files lie in it)' if loose else ''}: "
            "put each class's .txt files in a subfolder named after the class, root/<class>/*.txt."
        )
    rows = []
    for folder in folders:
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise ValueError(f"The class folder {folder} holds no .txt files.")
        rows += [(_decode(f.read_bytes(), f).strip(), folder.name, f.name) for f in files]
    empty = [f"{label}/{name}" for text, label, name in rows if not text]
    if empty:
        raise ValueError(f"{len(empty)} text files are empty: {', '.join(empty[:5])}.")
    return pd.DataFrame(rows, columns=["text", "label", "file"])


def _frame(source, what: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"from_files reads a CSV/TSV path, a folder of root/<class>/*.txt or a DataFrame, not "
            f"{type(source).__name__}. For lists of strings, pass pd.DataFrame({{'text': texts, "
            "'label': labels}) or give (texts, labels) to dlnb.text.text_loaders directly."
        )
    path = Path(source)
    if path.is_dir():
        return _read_folder(path)
    if not path.exists():
        raise FileNotFoundError(f"The {what} {path} does not exist (a CSV/TSV file or a folder).")
    return read_text_table(path)


def _label_names(labels: list[str], positive: str | None) -> tuple[str, ...]:
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"The labels have a single value {names}: a classifier needs two or more.")
    if positive is None:
        return tuple(names)
    if str(positive) not in names or len(names) != 2:
        raise ValueError(
            f"positive={positive!r} names the positive class of two labels; the labels are "
            f"{names[:10]}."
        )
    return (next(n for n in names if n != str(positive)), str(positive))


def from_files(
    source: str | Path | pd.DataFrame,
    text: str = "text",
    label: str = "label",
    *,
    test: str | Path | pd.DataFrame | float = 0.2,
    positive: str | None = None,
    seed: int = 0,
) -> TextData:
    """Your own labelled texts as a `TextData`: a CSV/TSV file, a DataFrame, or root/<class>/*.txt.

    Files: UTF-8 (a BOM is dropped; otherwise latin-1, with a warning), the delimiter from the
    extension (.tsv/.tab: tab, .csv: comma) or sniffed; quoted fields may hold tabs, commas,
    quotes and newlines. `text` and `label` name the columns; blank texts or labels are an error
    that gives their rows. `positive` makes that class id 1 of a binary task (else names are
    sorted). `test`: an official test split (same kind of source) or the fraction held out,
    stratified by class, with `seed`.
    """
    texts, labels = _pairs(_frame(source, "text source"), text, label, "table")
    if isinstance(test, float):
        if not 0 < test < 1:
            raise ValueError(f"test= as a fraction must be in (0, 1), got {test}.")
        test_texts: list[str] = []
        test_labels: list[str] = []
    else:
        test_texts, test_labels = _pairs(_frame(test, "test source"), text, label, "test table")
    names = _label_names(labels, positive)
    unknown = sorted(set(test_labels) - set(names))
    if unknown:
        raise ValueError(
            f"The test labels {unknown[:10]} are not among the training labels {names}."
        )
    y = np.array([names.index(v) for v in labels], dtype=np.int64)
    if isinstance(test, float):
        from sklearn.model_selection import train_test_split

        counts = np.bincount(y)
        if counts.min() < 2:
            raise ValueError(
                f"Class {names[int(counts.argmin())]!r} has {counts.min()} text: a stratified "
                "split needs at least 2 per class. Add texts, or pass test= a test file."
            )
        rows = np.arange(len(y))
        try:
            train_rows, test_rows = train_test_split(
                rows, test_size=test, random_state=seed, stratify=y
            )
        except ValueError as exc:  # fewer test rows than classes
            raise ValueError(
                f"A stratified test split of {test} of {len(y)} texts cannot hold every one of "
                f"the {len(names)} classes ({exc}); raise test= or pass a test file."
            ) from exc
        train_rows, test_rows = np.sort(train_rows), np.sort(test_rows)
        return TextData(
            [texts[i] for i in train_rows],
            y[train_rows],
            names,
            [texts[i] for i in test_rows],
            y[test_rows],
        )
    y_test = np.array([names.index(v) for v in test_labels], dtype=np.int64)
    return TextData(texts, y, names, test_texts, y_test)
