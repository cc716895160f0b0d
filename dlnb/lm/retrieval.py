"""Retrieval measured like a retrieval system: lexical BM25, dense vectors, a hybrid, and an exact
against an approximate vector index.

    bm25 = BM25(passages)                        # bm25s, English stop words removed
    lexical = bm25.scores(questions)             # (questions, passages)
    dense = query_vectors @ passage_vectors.T    # cosine similarities of unit vectors
    both = hybrid(lexical, dense, weight=0.5)    # z-scored per question, then mixed
    metrics(ranks(both, targets))                # recall@1, recall@5, MRR

Scores are full (questions x passages) matrices: the corpus here has hundreds of pages, and the
rank of the right page is what every metric needs. `build_index` puts the same vectors in a faiss
index, exact (`IndexFlatIP`) or approximate (HNSW graph), to measure what approximation costs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


def _require_passages(n: int) -> None:
    if n == 0:
        raise ValueError(
            "The corpus is empty: an index needs at least one passage. Check the pages you loaded "
            "(e.g. that a filter kept some)."
        )


class BM25:
    """Okapi BM25 (Lucene's variant, k1=1.5, b=0.75) over `passages`, via bm25s."""

    def __init__(self, passages: Sequence[str]):
        import bm25s

        _require_passages(len(passages))
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        tokens = bm25s.tokenize(list(passages), stopwords="en", show_progress=False)
        self.retriever.index(tokens, show_progress=False)
        self.size = len(passages)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(len(queries), passages) BM25 scores; a query with no indexed word scores 0 everywhere."""
        out = np.zeros((len(queries), self.size), dtype=np.float32)
        for i, query in enumerate(queries):
            words = self._bm25s.tokenize(
                [query], stopwords="en", return_ids=False, show_progress=False
            )[0]
            ids = self.retriever.get_tokens_ids(words)
            if ids:
                out[i] = self.retriever.get_scores_from_ids(ids)
        return out


def dense_scores(query_vectors: np.ndarray, passage_vectors: np.ndarray) -> np.ndarray:
    """Cosine similarities (questions x passages) of unit vectors."""
    _require_passages(len(passage_vectors))
    return np.asarray(query_vectors, dtype=np.float32) @ np.asarray(passage_vectors).T


def zscore(scores: np.ndarray) -> np.ndarray:
    """Each row standardised (mean 0, standard deviation 1; a constant row becomes zeros)."""
    scores = np.asarray(scores, dtype=np.float64)
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def hybrid(lexical: np.ndarray, dense: np.ndarray, weight: float) -> np.ndarray:
    """`weight` x z-scored lexical + (1 - weight) x z-scored dense scores, per question."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}.")
    return weight * zscore(lexical) + (1 - weight) * zscore(dense)


def ranks(scores: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """1-based rank of each question's target passage (ties counted against it)."""
    scores = np.asarray(scores)
    rows = np.asarray(targets, dtype=np.int64)
    own = scores[np.arange(len(rows)), rows][:, None]
    return (scores >= own).sum(axis=1)


def metrics(rank: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """recall@k (the right passage in the top k) for each k, and the mean reciprocal rank."""
    rank = np.asarray(rank)
    out = {f"recall@{k}": float(np.mean(rank <= k)) for k in ks}
    out["MRR"] = float(np.mean(1.0 / rank))
    return out


def tune_weight(
    lexical: np.ndarray,
    dense: np.ndarray,
    targets: Sequence[int],
    grid: Sequence[float] = (0.2, 0.35, 0.5, 0.65, 0.8),
) -> tuple[float, dict[float, float]]:
    """The hybrid weight with the best MRR on these (tuning) questions, and every weight's MRR."""
    mrr = {w: metrics(ranks(hybrid(lexical, dense, w), targets))["MRR"] for w in grid}
    return max(mrr, key=lambda w: mrr[w]), mrr


def build_index(vectors: np.ndarray, kind: str = "exact", m: int = 16, ef_search: int = 16):
    """A faiss inner-product index of `vectors`, and the seconds it took to build.

    `kind="exact"` compares a query with every vector; `"hnsw"` walks a graph of `m` neighbours
    per vector, looking at `ef_search` candidates per query: approximate, and far faster at scale.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    _require_passages(len(vectors))
    start = time.perf_counter()
    index: faiss.Index
    if kind == "exact":
        index = faiss.IndexFlatIP(vectors.shape[1])
    elif kind == "hnsw":
        graph = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efSearch = ef_search
        index = graph
    else:
        raise ValueError(f"kind must be 'exact' or 'hnsw', got {kind!r}.")
    index.add(vectors)
    return index, time.perf_counter() - start


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """The ids of the top `k` vectors for each query, and the milliseconds per query."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, 1000 * (time.perf_counter() - start) / max(len(queries), 1)


def overlap_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """The approximate index's recall against the exact one: the share of each query's exact top k
    that the approximate top k also holds, averaged over queries."""
    k = exact.shape[1]
    return float(
        np.mean([len(set(a) & set(e)) / k for a, e in zip(approximate, exact, strict=True)])
    )


def timed_scores(score, queries: Sequence[str]) -> tuple[np.ndarray, float]:
    """`score(queries)` and the milliseconds it took per query."""
    start = time.perf_counter()
    out = score(queries)
    return out, 1000 * (time.perf_counter() - start) / max(len(queries), 1)
