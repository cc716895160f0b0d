"""BM25, dense and hybrid scores; ranks and metrics; exact and HNSW faiss indexes."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.lm import retrieval as ret

DOCS = [
    "Prices of round cut diamonds: carat, cut, colour and clarity.",
    "Daily air quality measurements in New York, ozone and wind.",
    "Heights of parents and their children, collected by Galton.",
]


def test_bm25_finds_the_page_sharing_rare_words():
    bm25 = ret.BM25(DOCS)
    scores = bm25.scores(["ozone in New York", "diamond clarity", "zzz unknown words"])
    assert scores.shape == (3, 3)
    assert scores[0].argmax() == 1 and scores[1].argmax() == 0
    assert np.all(scores[2] == 0)  # no indexed word: no page is preferred


def test_an_empty_corpus_is_a_clear_error():
    for build in (lambda: ret.BM25([]), lambda: ret.build_index(np.zeros((0, 4)))):
        with pytest.raises(ValueError, match="corpus is empty"):
            build()
    with pytest.raises(ValueError, match="corpus is empty"):
        ret.dense_scores(np.ones((1, 4)), np.zeros((0, 4)))


def test_hybrid_mixes_standardised_scores():
    lexical = np.array([[10.0, 0.0, 0.0]])
    dense = np.array([[0.1, 0.9, 0.2]])
    assert ret.hybrid(lexical, dense, 1.0).argmax() == 0
    assert ret.hybrid(lexical, dense, 0.0).argmax() == 1
    assert np.allclose(ret.zscore(np.array([[2.0, 2.0]])), 0.0)
    with pytest.raises(ValueError, match="weight"):
        ret.hybrid(lexical, dense, 1.5)


def test_ranks_count_ties_against_the_target_and_metrics_follow():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.1, 0.2, 0.3]])
    rank = ret.ranks(scores, [0, 1, 0])
    assert rank.tolist() == [1, 2, 3]
    m = ret.metrics(rank, ks=(1, 2))
    assert m == pytest.approx(
        {"recall@1": 1 / 3, "recall@2": 2 / 3, "MRR": (1 + 1 / 2 + 1 / 3) / 3}
    )


def test_tune_weight_picks_the_weight_with_the_best_mrr():
    lexical = np.array([[1.0, 0.0], [0.0, 1.0]])
    dense = np.array([[0.0, 1.0], [1.0, 0.0]])
    weight, mrr = ret.tune_weight(lexical, dense, [0, 1], grid=(0.2, 0.8))
    assert weight == 0.8 and mrr[0.8] == 1.0 and mrr[0.2] == 0.5


def test_exact_search_is_brute_force_and_hnsw_approximates_it():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:20] + 0.05 * rng.normal(size=(20, 16)).astype(np.float32)
    exact, seconds = ret.build_index(vectors, "exact")
    ids, ms = ret.search(exact, queries, 5)
    brute = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    assert np.array_equal(ids, brute) and seconds >= 0 and ms >= 0
    hnsw, _ = ret.build_index(vectors, "hnsw", ef_search=64)
    found, _ = ret.search(hnsw, queries, 5)
    assert ret.overlap_at_k(found, ids) >= 0.9
    assert ret.overlap_at_k(ids, ids) == 1.0
    with pytest.raises(ValueError, match="kind"):
        ret.build_index(vectors, "ivf")


def test_timed_scores_returns_milliseconds_per_query():
    out, ms = ret.timed_scores(lambda qs: np.zeros((len(qs), 2)), ["a", "b"])
    assert out.shape == (2, 2) and ms >= 0
