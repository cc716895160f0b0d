"""dlnb.data.arrays: rows of one input or of a tuple of inputs, and how many there are."""

import numpy as np
import pytest
import torch

from dlnb.data.arrays import num_rows, rows


def test_rows_of_one_input_or_of_each_input_of_a_tuple():
    x = torch.arange(12).reshape(6, 2)
    ids = [[1, 2], [3], [4, 5, 6], [7], [8], [9]]
    picked = torch.tensor([4, 0])
    assert torch.equal(rows(x, picked), x[[4, 0]])
    both = rows((x, np.arange(6) * 10), picked)
    assert isinstance(both, tuple) and torch.equal(both[0], x[[4, 0]])
    assert both[1].tolist() == [40, 0]
    assert rows(ids, 2) == [4, 5, 6]  # a list of token ids of varying lengths


def test_num_rows_counts_examples_and_a_tuple_must_agree():
    assert num_rows(torch.zeros(5, 3)) == 5
    assert num_rows((torch.zeros(4, 2), np.zeros(4))) == 4
    assert num_rows([[1], [2, 3]]) == 2
    with pytest.raises(ValueError, match=r"as many rows; got \[3, 4\]"):
        num_rows((torch.zeros(4, 2), torch.zeros(3)))
