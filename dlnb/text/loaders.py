"""Texts to batches: checked texts and labels, token ids, per-batch padding, and training batches
bucketed by length so that short texts are not padded to the length of long ones.

    loaders = text_loaders(tokenizer, (texts, labels), test=(t_texts, t_labels),
                           label_names=("negative", "positive"))
    pad_fraction([len(ids) for ids in tokenize(tokenizer, texts)], batch_size=16)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from dlnb.data.loaders import Loaders, PairDataset, make_loaders

__all__ = [
    "LengthBuckets",
    "check_texts",
    "encode_labels",
    "encode_texts",
    "epochs_for",
    "model_max_length",
    "pad_collate",
    "pad_fraction",
    "text_loaders",
    "token_loaders",
    "tokenize",
]


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list of str; non-strings and empty (or blank) texts are a clear error."""
    if isinstance(texts, str):
        raise TypeError(
            "Texts must be a list of strings, not one string: wrap a single text as [text]."
        )
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
    labels: Sequence | None,
    label_names: Sequence[str],
    max_length: int | None = 64,
) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of each text (see `tokenize`) and the class ids of their labels (-1 when None)."""
    texts = check_texts(texts)
    if labels is None:  # unlabelled texts, e.g. to predict: a placeholder target per text
        return tokenize(tokenizer, texts, max_length), np.full(len(texts), -1, dtype=np.int64)
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


class LengthBuckets(torch.utils.data.Sampler[list[int]]):
    """Batches of texts of similar length: shuffle, sort each pool of `pool` batches by length,
    cut it into batches, shuffle the batches. Seeded by `generator` (reseeded per epoch by `fit`)."""

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        generator: torch.Generator | None = None,
        pool: int = 50,
    ):
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size and pool must be at least 1, got {batch_size}, {pool}.")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.pool = batch_size, pool
        self.generator = generator or torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[b].tolist()


def _pad_share(lengths: np.ndarray, batches: Sequence[Sequence[int]]) -> float:
    slots = sum(len(b) * int(lengths[list(b)].max()) for b in batches)
    return 1.0 - float(lengths.sum()) / slots


def pad_fraction(lengths: Sequence[int], batch_size: int = 16, seed: int = 0) -> dict[str, float]:
    """The share of padding tokens in one epoch of shuffled batches vs length-bucketed ones."""
    counts = np.asarray(lengths)
    if len(counts) == 0 or bool((counts < 1).any()):
        raise ValueError("pad_fraction needs the token count (>= 1) of every text.")
    order = np.random.default_rng(seed).permutation(len(counts)).tolist()
    shuffled = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    buckets = list(LengthBuckets(counts, batch_size, torch.Generator().manual_seed(seed)))
    return {"random": _pad_share(counts, shuffled), "bucketed": _pad_share(counts, buckets)}


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
    bucket: bool = True,
    sort_eval: bool = False,
    eval_batch_size: int | None = None,
) -> Loaders:
    """`make_loaders` of (texts, labels) pairs, tokenized and padded per batch.

    Training batches group texts of similar length (`LengthBuckets`, seeded by `seed`; `bucket=
    False`: plain shuffled batches). Valid and test keep their order, or with `sort_eval` go
    shortest first (less padding; `predict` then returns the rows in that order), batched by
    `eval_batch_size` (default `batch_size`). Labels may be None for texts to predict (their
    targets are -1).
    """
    if isinstance(tokenizer, (tuple, list)):
        raise TypeError(
            "text_loaders takes the tokenizer first: text_loaders(load_tokenizer(), (texts, "
            "labels), label_names=...)."
        )
    if not isinstance(train, tuple) or len(train) != 2:
        raise TypeError(
            "train must be a (texts, labels) pair; for a TextData from from_files pass "
            "data.train (and test=data.test)."
        )

    def encode(split: tuple) -> tuple:
        return encode_texts(tokenizer, split[0], split[1], label_names, max_length)

    return _padded_loaders(
        train,
        valid,
        test,
        encode,
        batch_size,
        seed,
        pad_collate(tokenizer.pad_token_id or 0),
        bucket,
        sort_eval,
        eval_batch_size,
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


def _by_length(split: tuple) -> tuple:
    ids, y = split
    order = np.argsort([len(i) for i in ids], kind="stable")
    return [ids[i] for i in order], np.asarray(y)[order]


def _padded_loaders(
    train: tuple,
    valid: tuple | None,
    test: tuple | None,
    encode: Callable[[tuple], tuple],
    batch_size: int,
    seed: int,
    collate: Callable,
    bucket: bool = False,
    sort_eval: bool = False,
    eval_batch_size: int | None = None,
) -> Loaders:
    """Splits given as they are (nothing held out of train), each encoded to (token ids, y)."""
    x_train, y_train = encode(train)
    evals = [encode(s) if s is not None else None for s in (valid, test)]
    if sort_eval:
        evals = [_by_length(s) if s is not None else None for s in evals]
    x_test, y_test = evals[1] if evals[1] is not None else (None, None)
    loaders = make_loaders(
        x_train,
        y_train,
        x_test,
        y_test,
        valid=evals[0],
        valid_fraction=0.0,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        seed=seed,
        collate_fn=collate,
    )
    if bucket:
        generator = torch.Generator().manual_seed(seed)
        sampler = LengthBuckets([len(i) for i in x_train], batch_size, generator)
        dataset: Any = PairDataset(x_train, y_train)  # a map-style dataset of (ids, y) pairs
        loaders.train = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            generator=generator,
        )
    return loaders


def epochs_for(n_examples: int, batch_size: int, min_steps: int, min_epochs: int = 1) -> int:
    """Enough epochs for at least `min_steps` optimizer steps: tiny training sets get more passes."""
    steps_per_epoch = max(1, -(-n_examples // batch_size))
    return max(min_epochs, -(-min_steps // steps_per_epoch))
