"""Counting baselines for next-token prediction: unigram and bigram models with add-alpha smoothing.

A language model that cannot beat counting has learned nothing a table of frequencies does not
know. `fit_ngram` picks the smoothing on the last tenth of the training ids (held apart from the
counts), then refits on all of them; `window_nll` scores the same positions as
`dlnb.lm.decoder.window_nll`, so the two are paired window by window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlnb.lm.decoder import windows


@dataclass(frozen=True)
class NgramModel:
    """Log-probabilities of the next token: (V,) for a unigram, (V, V) rows by previous token."""

    order: int
    log_probs: np.ndarray
    alpha: float

    def token_nll(self, ids: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of `ids[1:]`, each given the token before it (bigram) or not."""
        ids = np.asarray(ids)
        if self.order == 1:
            return -self.log_probs[ids[1:]]
        return -self.log_probs[ids[:-1], ids[1:]]

    def window_nll(self, ids: np.ndarray, block: int) -> np.ndarray:
        """Mean NLL of tokens 2..block of each window of `block` tokens (one number per window)."""
        cut = windows(np.asarray(ids), block)
        return np.array([self.token_nll(w).mean() for w in cut])


def _counts(ids: np.ndarray, vocab_size: int, order: int) -> np.ndarray:
    if order == 1:
        return np.bincount(ids[1:], minlength=vocab_size).astype(float)
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
    return counts


def _model(counts: np.ndarray, order: int, alpha: float) -> NgramModel:
    smoothed = counts + alpha
    return NgramModel(order, np.log(smoothed / smoothed.sum(axis=-1, keepdims=True)), alpha)


def fit_ngram(
    ids: np.ndarray,
    vocab_size: int,
    order: int,
    alphas: Sequence[float] = (0.01, 0.1, 1.0),
) -> NgramModel:
    """A unigram (`order=1`) or bigram (`order=2`) model of `ids`, its smoothing tuned on held-out
    training ids."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order}.")
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 20:
        raise ValueError(f"fit_ngram needs at least 20 tokens, got {len(ids)}.")
    cut = int(len(ids) * 0.9)
    fit_part, check = ids[:cut], ids[cut:]
    counts = _counts(fit_part, vocab_size, order)
    scores = {a: _model(counts, order, a).token_nll(check).mean() for a in alphas}
    best = min(scores, key=lambda a: scores[a])
    return _model(_counts(ids, vocab_size, order), order, best)


def window_pages(
    page_lengths: Sequence[int], block: int, n_windows: int, sep: int = 2
) -> np.ndarray:
    """The page each window of `block` tokens starts in, for pages joined with `sep` tokens
    between them (windows of one page are not independent: resample pages, not windows)."""
    starts = np.cumsum([0] + [n + sep for n in page_lengths[:-1]])
    return np.searchsorted(starts, np.arange(n_windows) * block, side="right") - 1


def page_means(values: Sequence[float], pages: Sequence[int]) -> np.ndarray:
    """The mean of `values` per page, in page order (one number per page that has a window)."""
    frame = pd.DataFrame({"value": np.asarray(values, dtype=float), "page": np.asarray(pages)})
    return frame.groupby("page")["value"].mean().to_numpy()
