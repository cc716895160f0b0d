"""Attention against PyTorch's kernel, masks, the encoder's behaviour, and the attention plots."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlnb.text.transformer import (
    EncoderConfig,
    MultiHeadSelfAttention,
    TransformerEncoder,
    attention,
    attention_maps,
    causal_mask,
    padding_mask,
    plot_attention,
    plot_cls_attention,
    plot_positions,
    sinusoidal_positions,
)


def _qkv(seed=0, shape=(2, 3, 5, 8)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(3)]


def test_attention_matches_pytorch_without_mask():
    q, k, v = _qkv()
    out, weights = attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))


def test_attention_matches_pytorch_with_causal_and_padding_masks():
    q, k, v = _qkv(1)
    causal = causal_mask(5)
    out, weights = attention(q, k, v, causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=causal))
    assert torch.all(weights[..., ~causal] == 0)  # nothing attends to the future
    tokens = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    mask = padding_mask(tokens)
    out, weights = attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(weights[0, :, :, 3:] == 0)  # padded keys get no weight


def test_fully_masked_query_gives_zeros_like_pytorch():
    q, k, v = _qkv(2, (1, 1, 3, 4))
    mask = torch.tensor([[False, False, False], [True, False, False], [True, True, True]])
    out, weights = attention(q, k, v, mask)
    assert torch.isfinite(out).all()
    assert torch.all(out[..., 0, :] == 0) and torch.all(weights[..., 0, :] == 0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_attention_rejects_a_non_boolean_mask():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="boolean"):
        attention(q, k, v, torch.ones(5, 5))


def test_scaling_by_sqrt_d():
    q, k, v = _qkv(3, (1, 1, 4, 16))
    _, weights = attention(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
    torch.testing.assert_close(weights, expected)


def test_multihead_weights_path_equals_fused_path_with_padding():
    torch.manual_seed(0)
    mha = MultiHeadSelfAttention(d_model=16, n_heads=4).eval()
    x = torch.randn(2, 6, 16)
    mask = padding_mask(torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6]))
    fused, none = mha(x, mask)
    explicit, weights = mha(x, mask, need_weights=True)
    assert none is None and weights.shape == (2, 4, 6, 6)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_multihead_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(d_model=10, n_heads=4)


def test_sinusoidal_positions_are_distinct_and_bounded():
    table = sinusoidal_positions(50, 16)
    assert table.shape == (50, 16) and table.abs().max() <= 1.0
    assert torch.cdist(table, table).add(torch.eye(50)).min() > 1e-3  # every position differs
    assert sinusoidal_positions(4, 7).shape == (4, 7)  # odd widths work too


def _encoder(**kw):
    torch.manual_seed(0)
    cfg = dict(
        vocab_size=20, num_classes=3, d_model=16, n_heads=2, n_layers=2, max_len=12, dropout=0.0
    )
    cfg.update(kw)
    return TransformerEncoder(EncoderConfig(**cfg)).eval()


def test_encoder_padding_does_not_change_the_output():
    model = _encoder()
    ids = torch.tensor([[1, 5, 6, 7]])
    padded = torch.tensor([[1, 5, 6, 7, 0, 0, 0]])
    short = model(ids, torch.ones_like(ids)).logits
    long = model(padded, (padded != 0).long()).logits
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)
    garbage = torch.tensor([[1, 5, 6, 7, 9, 3, 2]])  # whatever sits under the mask is ignored
    torch.testing.assert_close(
        model(garbage, (padded != 0).long()).logits, long, atol=1e-5, rtol=1e-5
    )


def test_encoder_without_positions_ignores_order_and_with_positions_does_not():
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    swapped = torch.tensor([[1, 8, 7, 6, 5]])
    bag = _encoder(positions="none")
    torch.testing.assert_close(bag(ids).logits, bag(swapped).logits, atol=1e-5, rtol=1e-5)
    for positions in ("sinusoidal", "learned"):
        model = _encoder(positions=positions)
        assert not torch.allclose(model(ids).logits, model(swapped).logits, atol=1e-4)


def test_encoder_mean_pooling_and_output_shapes():
    model = _encoder(pooling="mean")
    ids = torch.randint(2, 20, (4, 9))
    out = model(ids, torch.ones_like(ids), output_attentions=True)
    assert out.logits.shape == (4, 3)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (4, 2, 9, 9)
    assert model(ids).attentions is None


def test_encoder_bad_inputs_are_clear_errors():
    model = _encoder()
    with pytest.raises(ValueError, match="max_len=12"):
        model(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.ones(1, 4))
    with pytest.raises(ValueError, match="must match"):
        model(torch.ones(2, 4, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Rows \[1\]"):
        model(torch.ones(2, 4, dtype=torch.long), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="positions"):
        EncoderConfig(vocab_size=5, num_classes=2, positions="rotary")


def test_attention_maps_are_distributions_over_real_tokens():
    model = _encoder()
    model.train()
    ids = torch.tensor([[1, 4, 5, 0, 0], [1, 4, 5, 6, 7]])
    maps = attention_maps(model, ids, (ids != 0).long())
    assert model.training  # mode restored
    assert len(maps) == 2 and isinstance(maps[0], np.ndarray)
    np.testing.assert_allclose(maps[0].sum(-1), 1.0, rtol=1e-5)
    assert np.all(maps[1][0, :, :, 3:] == 0)


def test_plots_label_axes_with_tokens_and_check_shapes():
    model = _encoder()
    ids = torch.tensor([[1, 4, 5, 6]])
    maps = attention_maps(model, ids)
    tokens = ["[CLS]", "x", "y", "z"]
    fig, ax = plot_attention(maps[0][0, 0], tokens, title="layer 0")
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "attention weight"  # a colorbar
    fig2, ax2 = plot_cls_attention(maps, 0, tokens)
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["L1 h0", "L1 h1", "L2 h0", "L2 h1"]
    assert len(fig2.axes) == 2
    with pytest.raises(ValueError, match="one \\(queries, keys\\) matrix"):
        plot_attention(maps[0], tokens)
    with pytest.raises(ValueError, match="4 query"):
        plot_attention(np.ones((3, 3)), tokens[:3], query_tokens=tokens)
    matplotlib.pyplot.close("all")


def test_plot_positions_draws_the_table_with_a_colorbar_and_chosen_dimensions():
    table = sinusoidal_positions(20, 8)
    fig, (heatmap, curves) = plot_positions(table, dims=(0, 1, 7, 99))
    assert heatmap.images[0].get_array().shape == (8, 20)  # dimensions x positions
    assert [line.get_label() for line in curves.get_lines()] == [
        "dimension 0",
        "dimension 1",
        "dimension 7",
    ]  # 99 is past the table and left out
    np.testing.assert_allclose(curves.get_lines()[1].get_ydata(), table[:, 1].numpy())
    assert any(a.get_ylabel() == "value" for a in fig.axes if a not in (heatmap, curves))
    with pytest.raises(ValueError, match="max_len, d_model"):
        plot_positions(np.ones(5))
    matplotlib.pyplot.close("all")


@pytest.mark.slow
def test_encoder_learns_the_order_task(single_thread):
    """A two-layer encoder with positions solves A-before-B; the same encoder without positions cannot."""
    from dlnb.text.datasets import make_order_task

    data = {
        k: torch.from_numpy(v) for k, v in make_order_task(600, max_len=10, n_fillers=6).items()
    }
    test = {
        k: torch.from_numpy(v)
        for k, v in make_order_task(400, max_len=10, n_fillers=6, seed=1).items()
    }

    def train(positions):
        torch.manual_seed(0)
        model = TransformerEncoder(
            EncoderConfig(
                vocab_size=10,
                num_classes=2,
                d_model=32,
                n_heads=2,
                n_layers=2,
                max_len=11,
                dropout=0.0,
                positions=positions,
            )
        )
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(6):
            for i in torch.randperm(600).split(32):
                loss = F.cross_entropy(
                    model(data["input_ids"][i], data["attention_mask"][i]).logits, data["y"][i]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(test["input_ids"], test["attention_mask"]).logits.argmax(1)
        return (pred == test["y"]).float().mean().item()

    assert train("sinusoidal") > 0.9
    assert train("none") < 0.6  # 400 test sequences: chance is 0.5 +- 0.025
