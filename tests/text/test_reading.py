"""Reading your own texts: CSV/TSV quoting traps, encodings, folders per class, splits, bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest

from dlnb.text import reading


def write(path, content: str | bytes):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_tsv_with_quoted_tabs_quotes_and_newlines(tmp_path):
    frame = pd.DataFrame(
        {
            "text": ['she said "great"\tand left', "two\nlines", "plain", "fine", "bad", "ok"],
            "label": ["pos", "neg", "pos", "pos", "neg", "neg"],
        }
    )
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    data = reading.from_files(tmp_path / "t.tsv", test=frame.iloc[:2])
    assert data.texts == frame["text"].tolist() and data.label_names == ("neg", "pos")
    assert data.labels.tolist() == [1, 0, 1, 1, 0, 0] and data.test_labels.tolist() == [1, 0]


def test_a_bare_carriage_return_inside_a_field_is_text(tmp_path):
    frame = pd.DataFrame({"text": ["@air\rnot again", "fine"], "label": ["neg", "pos"]})
    frame.to_csv(tmp_path / "cr.tsv", sep="\t", index=False)  # pandas leaves the \r unquoted
    assert reading.read_text_table(tmp_path / "cr.tsv")["text"].tolist() == frame["text"].tolist()
    crlf = write(tmp_path / "crlf.csv", "text,label\r\na,p\r\nb,q\r\n")
    assert reading.read_text_table(crlf)["label"].tolist() == ["p", "q"]


def test_delimiter_bom_and_latin1(tmp_path):
    rows = 'text,label\n"a, b",x\nc,y\n'
    bom = write(tmp_path / "a.csv", b"\xef\xbb\xbf" + rows.encode())
    assert reading.read_text_table(bom).columns.tolist() == ["text", "label"]  # no BOM in "text"
    assert reading.from_files(bom, test=bom).texts == ["a, b", "c"]
    tabbed = write(tmp_path / "b.txt", "text\tlabel\nx y\tp\nz\tq\n")
    assert reading.read_text_table(tabbed)["text"].tolist() == ["x y", "z"]  # sniffed
    as_csv = write(tmp_path / "c.csv", "text\tlabel\nx, y\tp\n")  # a TSV named .csv
    assert reading.read_text_table(as_csv)["text"].tolist() == ["x, y"]
    with pytest.warns(UserWarning, match="not valid UTF-8.*latin-1"):
        frame = reading.read_text_table(write(tmp_path / "d.csv", b"text,label\ncaf\xe9,p\n"))
    assert frame["text"].tolist() == ["café"]


def test_blank_texts_and_labels_are_reported_by_row(tmp_path):
    path = write(tmp_path / "e.csv", "text,label\nfine,p\n  ,p\n,q\nok,\n")
    with pytest.raises(ValueError, match=r"blank or missing texts in rows \[2, 3\]"):
        reading.from_files(path)
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["p", None, "q"]})
    with pytest.raises(ValueError, match=r"missing labels in rows \[2\]"):
        reading.from_files(frame)


def test_wrong_columns_types_and_quotes_name_the_fix(tmp_path):
    frame = pd.DataFrame({"review": ["a", "b"], "label": ["p", "q"]})
    with pytest.raises(ValueError, match="no column 'text'; its columns are: review, label"):
        reading.from_files(frame)
    with pytest.raises(TypeError, match="pd.DataFrame"):
        reading.from_files(["a", "b"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        reading.from_files(tmp_path / "missing.tsv")
    broken = write(tmp_path / "f.csv", 'text,label\n"never closed,p\nx,q\n')
    with pytest.raises(ValueError, match="must close it"):
        reading.from_files(broken)
    with pytest.raises(ValueError, match="single value"):
        reading.from_files(pd.DataFrame({"text": ["a", "b"], "label": ["p", "p"]}))
    with pytest.raises(ValueError, match="fraction must be in"):
        reading.from_files(frame, text="review", test=1.5)


def test_stratified_split_and_positive_class():
    labels = ["spam"] * 12 + ["ham"] * 36
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(48)], "label": labels})
    data = reading.from_files(frame, test=0.25, positive="spam", seed=1)
    assert data.label_names == ("ham", "spam")  # spam is class 1
    assert np.bincount(data.test_labels).tolist() == [9, 3]  # a quarter of every class
    assert len(data) == 48 and not set(data.texts) & set(data.test_texts)
    other = reading.from_files(frame, test=0.25, positive="spam", seed=2)
    assert other.test_texts != data.test_texts
    with pytest.raises(ValueError, match="positive='eggs'"):
        reading.from_files(frame, positive="eggs")
    with pytest.raises(ValueError, match="at least 2 per class"):
        reading.from_files(pd.DataFrame({"text": ["a", "b", "c"], "label": ["p", "p", "q"]}))
    test = pd.DataFrame({"text": ["x"], "label": ["eggs"]})
    with pytest.raises(ValueError, match="not among the training labels"):
        reading.from_files(frame, test=test)


def test_a_folder_of_text_files_per_class(tmp_path):
    for label, texts in {"neg": ["awful", "bad", "dire"], "pos": ["great", "good", "fine"]}.items():
        (tmp_path / label).mkdir()
        for i, t in enumerate(texts):
            write(tmp_path / label / f"{i}.txt", t + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = reading.from_files(tmp_path, test=0.34)
    assert data.label_names == ("neg", "pos") and len(data) == 6
    assert sorted(data.texts + data.test_texts) == ["awful", "bad", "dire", "fine", "good", "great"]
    write(tmp_path / "pos" / "3.txt", "  \n")
    with pytest.raises(ValueError, match="1 text files are empty: pos/3.txt"):
        reading.from_files(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .txt files"):
        reading.from_files(tmp_path)


def test_a_folder_without_class_folders(tmp_path):
    write(tmp_path / "a.txt", "hello")
    with pytest.raises(ValueError, match=r"no class folders \(1 .txt files lie in it\)"):
        reading.from_files(tmp_path)
