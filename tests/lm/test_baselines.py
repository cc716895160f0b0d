"""Unigram and bigram baselines: smoothing tuned on held-out ids, the decoder's window positions."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.lm import baselines


def test_a_bigram_model_knows_what_follows_and_a_unigram_model_does_not():
    ids = np.tile(np.arange(4), 50)  # 0 1 2 3 0 1 2 3 ...
    uni = baselines.fit_ngram(ids, 4, order=1)
    bi = baselines.fit_ngram(ids, 4, order=2)
    assert uni.window_nll(ids, 8).mean() == pytest.approx(np.log(4), abs=0.01)
    assert bi.window_nll(ids, 8).mean() < 0.05
    assert bi.alpha == 0.01  # the least smoothing fits a deterministic sequence best


def test_window_nll_scores_the_same_positions_as_the_decoder():
    ids = np.tile(np.arange(5), 30)
    model = baselines.fit_ngram(ids, 5, order=2)
    scores = model.window_nll(ids, 10)
    assert scores.shape == (15,)
    first = model.token_nll(ids[:10]).mean()
    assert scores[0] == pytest.approx(first)


def test_bad_orders_and_tiny_texts_are_errors():
    with pytest.raises(ValueError, match="order must be"):
        baselines.fit_ngram(np.arange(30), 30, order=3)
    with pytest.raises(ValueError, match="at least 20"):
        baselines.fit_ngram(np.arange(5), 5, order=1)


def test_windows_are_assigned_to_the_page_they_start_in():
    # pages of 5, 3 and 10 tokens joined by 2: page starts at 0, 7, 12
    assert baselines.window_pages([5, 3, 10], block=4, n_windows=5).tolist() == [0, 0, 1, 2, 2]


def test_page_means_average_each_pages_windows():
    means = baselines.page_means([1.0, 3.0, 5.0, 7.0], [0, 0, 2, 2])
    np.testing.assert_allclose(means, [2.0, 6.0])
