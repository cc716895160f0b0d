"""Attention shares per layer and head, and the sentences that describe them."""

import numpy as np
import pytest

from dlnb.text import maps

# Two sequences: [CLS]=1, A=2, B=3, fillers >= 4; the second has one padding slot (0).
IDS = np.array([[1, 2, 4, 3, 5], [1, 5, 3, 2, 0]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
GROUPS = {"A": [2], "B": [3], "fillers": [4, 5]}


def _maps(layer1_head0: str, layer1_head1: str, layer2: str) -> list[np.ndarray]:
    """(examples, heads, queries, keys) maps whose [CLS] row puts all its weight on one group."""
    out = []
    for heads in ((layer1_head0, layer1_head1), (layer2, layer2)):
        w = np.full((2, 2, 5, 5), 0.2)
        for h, group in enumerate(heads):
            for i in range(2):
                row = np.zeros(5)
                if group == "spread":
                    row[: MASK[i].sum()] = 1 / MASK[i].sum()
                else:
                    row[np.flatnonzero(IDS[i] == GROUPS[group][0])[0]] = 1.0
                w[i, h, 0] = row
        out.append(w)
    return out


def test_attention_shares_measure_the_query_row_per_layer_head_and_group():
    shares = maps.attention_shares(_maps("B", "A", "B"), IDS, MASK, query_token=1, groups=GROUPS)
    table = shares.set_index(["layer", "head", "group"])["share"]
    assert table[(1, 0, "B")] == 1.0 and table[(1, 0, "A")] == 0.0
    assert table[(1, 1, "A")] == 1.0 and table[(2, 1, "B")] == 1.0
    uniform = shares.set_index("group")["uniform"].groupby(level=0).first()
    assert uniform["A"] == pytest.approx((1 / 5 + 1 / 4) / 2)  # padding is not a real token


def test_a_query_token_missing_from_a_row_is_an_error():
    with pytest.raises(ValueError, match="Rows \\[1\\]"):
        maps.attention_shares(_maps("A", "B", "B"), IDS, MASK, query_token=4, groups=GROUPS)


def test_description_names_each_head_and_the_layers_that_reach_both_markers():
    shares = maps.attention_shares(_maps("B", "A", "B"), IDS, MASK, query_token=1, groups=GROUPS)
    text = maps.describe_attention(shares, "[CLS]", targets=("A", "B"))
    assert "In layer 1, [CLS]'s head 0 looks at B (1.00), head 1 looks at A (1.00)." in text
    assert "In layer 2 (the last), [CLS]'s head 0 looks at B (1.00)" in text
    assert text.endswith("each get a head's attention in layer 1.")
    assert maps.layers_looking_at(shares, ("A", "B")) == [1]


def test_description_says_when_the_last_layer_reads_one_marker_and_none_reaches_both():
    shares = maps.attention_shares(_maps("B", "B", "A"), IDS, MASK, query_token=1, groups=GROUPS)
    text = maps.describe_attention(shares, "[CLS]", targets=("A", "B"))
    assert "In layer 2 (the last), [CLS]'s head 0 looks at A (1.00), head 1 looks at A" in text
    assert text.endswith("No layer has heads on all of A and B, the tokens that decide the label.")


def test_an_even_spread_is_not_called_looking_at():
    shares = maps.attention_shares(
        _maps("spread", "spread", "spread"), IDS, MASK, query_token=1, groups=GROUPS
    )
    text = maps.describe_attention(shares, "[CLS]")
    assert "looks at" not in text and "head 0 spreads its attention" in text
    with pytest.raises(ValueError, match="attention_shares"):
        maps.describe_attention(shares.iloc[0:0], "[CLS]")


def test_a_head_giving_a_third_to_one_token_spreads_its_attention():
    """0.33 on A with the rest on other tokens is not "looking at A": half is the default bar."""
    w = _maps("B", "A", "B")
    for i in range(2):
        w[1][i, 0, 0] = 0.0
        w[1][i, 0, 0, np.flatnonzero(IDS[i] == 2)[0]] = 0.34
        w[1][i, 0, 0, np.flatnonzero(IDS[i] == 3)[0]] = 0.33
        w[1][i, 0, 0, 0] = 0.33
    shares = maps.attention_shares(w, IDS, MASK, query_token=1, groups=GROUPS)
    text = maps.describe_attention(shares, "[CLS]")
    assert "(the last), [CLS]'s head 0 spreads its attention (largest share A 0.34)" in text
    assert maps.layers_looking_at(shares, ("A", "B")) == [1]
