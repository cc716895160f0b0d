"""Decoding strategies side by side, measured: diversity across samples, repetition within them.

    table = compare_decoding(llm, prompt, samples=4, max_new_tokens=40)

- distinct-2: distinct word bigrams over all bigrams of a strategy's samples (1.0: no pair of
  words repeats anywhere; low: the samples say the same thing);
- repeated 3-grams: the share of a sample's word trigrams that already occurred earlier in the
  same sample (the loops small models fall into), averaged over samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from dlnb.lm.llm import LLM, generate

#: name -> keyword arguments of `model.generate`. Greedy and the repetition penalty are
#: deterministic, the others sample.
STRATEGIES: dict[str, dict] = {
    "greedy": {"do_sample": False},
    "temperature 1.0": {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0},
    "top-k 20": {"do_sample": True, "temperature": 1.0, "top_k": 20, "top_p": 1.0},
    "top-p 0.9": {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 0.9},
    "repetition penalty 1.3": {"do_sample": False, "repetition_penalty": 1.3},
}


def words(text: str) -> list[str]:
    """Lower-case words and numbers of `text` (punctuation dropped)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The consecutive n-grams of `tokens`."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all word n-grams of `texts` together (0 when there are none)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngrams(text: str, n: int = 3) -> float:
    """Share of `text`'s word n-grams that already occurred earlier in it (0 when there are none)."""
    grams = ngrams(words(text), n)
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams) if grams else 0.0


def compare_decoding(
    llm: LLM,
    prompt: str,
    strategies: dict[str, dict] | None = None,
    *,
    samples: int = 4,
    max_new_tokens: int = 40,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per strategy: distinct-2 across its `samples`, repeated 3-grams within them, and
    its first sample. A strategy that does not sample gives the same text every time: it is
    generated once and counted `samples` times."""
    rows = []
    for name, kwargs in (strategies or STRATEGIES).items():
        n = samples if kwargs.get("do_sample") else 1
        texts = generate(llm, [prompt] * n, max_new_tokens=max_new_tokens, seed=seed, **kwargs)
        texts = texts * (samples // n)
        rows.append(
            {
                "strategy": name,
                "distinct-2": distinct_n(texts, 2),
                "repeated 3-grams": sum(repeated_ngrams(t, 3) for t in texts) / len(texts),
                "first sample": texts[0],
            }
        )
    return pd.DataFrame(rows)
