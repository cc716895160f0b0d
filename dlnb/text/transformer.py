"""Attention from first principles and a compact pre-norm transformer encoder for classification.

    out, weights = attention(q, k, v, mask)           # softmax(q k^T / sqrt(d)) v, and the weights
    model = TransformerEncoder(EncoderConfig(vocab_size=32, num_classes=2))
    logits = model(input_ids, attention_mask)          # first token ([CLS]) pooled by default
    maps = attention_maps(model, input_ids, attention_mask)  # one (B, heads, T, T) array per layer

Masks follow `torch.nn.functional.scaled_dot_product_attention`: a boolean mask is True where a
query may attend to a key. Token masks (`attention_mask`, shape (B, T)) follow Hugging Face: 1 for
a real token, 0 for padding, so the same batches feed this encoder and a pretrained BERT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlnb.models import eval_mode
from dlnb.plots import axes
from dlnb.runtime import model_device

POSITIONS = ("sinusoidal", "learned", "none")
POOLINGS = ("cls", "mean")


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention softmax(q k^T / sqrt(d)) v; returns (output, weights).

    `mask` is boolean, True where a query may attend to a key, broadcastable to (..., Tq, Tk).
    A query that may attend to no key gets zero weights and a zero output (as PyTorch's kernel).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(
                f"attention mask must be boolean (True = may attend), got {mask.dtype}."
            )
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:  # rows with every key masked are NaN after softmax: make them zero
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n) boolean mask letting position i attend to positions 0..i only."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) token mask (1 = token, 0 = padding) -> (B, 1, 1, T) boolean key mask for attention."""
    return attention_mask.bool()[:, None, None, :]


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """The fixed (max_len, d_model) sine/cosine position table of "Attention Is All You Need"."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : d_model // 2]
    return table


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention: one projection to q, k, v, heads attend in parallel, one output projection."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}.")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D) -> (output (B, T, D), weights (B, heads, T, T) or None)."""
        B, T, D = x.shape
        q, k, v = (
            t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)
            for t in self.qkv(x).split(D, dim=-1)
        )
        p = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = attention(q, k, v, mask, dropout_p=p)
        else:  # PyTorch's fused kernel: same maths, no weights materialised
            y, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), weights


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D) -> (x (B, T, D), attention weights or None)."""
        h, weights = self.attn(self.norm1(x), mask, need_weights)
        x = x + self.drop(h)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, weights


@dataclass
class EncoderConfig:
    """Size and behaviour of a `TransformerEncoder`."""

    vocab_size: int
    num_classes: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None  # default 4 * d_model
    max_len: int = 128
    dropout: float = 0.1
    positions: str = "sinusoidal"  # "sinusoidal" | "learned" | "none" (a bag of tokens)
    pooling: str = "cls"  # "cls": the first token's vector | "mean": mean over real tokens

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise ValueError(
                f"EncoderConfig.positions={self.positions!r} is not one of {POSITIONS}."
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"EncoderConfig.pooling={self.pooling!r} is not one of {POOLINGS}.")


@dataclass
class EncoderOutput:
    """What `TransformerEncoder` returns: logits, and per-layer attention weights when asked."""

    logits: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None


class TransformerEncoder(nn.Module):
    """Token embeddings + positions -> pre-norm blocks -> final norm -> pooled -> linear classifier."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos: torch.Tensor | None  # a learned parameter, a fixed buffer, or none
        if c.positions == "learned":
            self.pos = nn.Parameter(torch.randn(c.max_len, c.d_model))  # same scale as embed
        elif c.positions == "sinusoidal":
            self.register_buffer(
                "pos", sinusoidal_positions(c.max_len, c.d_model), persistent=False
            )
        else:
            self.pos = None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.d_ff or 4 * c.d_model, c.dropout)
            for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        """input_ids (B, T) int, attention_mask (B, T) 1/0 -> EncoderOutput(logits (B, classes))."""
        self._check(input_ids, attention_mask)
        x = self.embed(input_ids)  # N(0, 1) init: the same scale as the positions
        if self.pos is not None:
            x = x + self.pos[: input_ids.size(1)]
        x = self.drop(x)
        mask = padding_mask(attention_mask) if attention_mask is not None else None
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask, output_attentions)
            attentions.append(weights)
        x = self.norm(x)
        if self.config.pooling == "cls":
            pooled = x[:, 0]
        elif attention_mask is None:
            pooled = x.mean(dim=1)
        else:
            keep = attention_mask.to(x.dtype)[..., None]
            pooled = (x * keep).sum(dim=1) / keep.sum(dim=1)
        return EncoderOutput(self.head(pooled), tuple(attentions) if output_attentions else None)

    def _check(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        if input_ids.ndim != 2 or input_ids.is_floating_point():
            raise ValueError(
                f"input_ids must be integer token ids of shape (batch, length); got "
                f"{input_ids.dtype} of shape {tuple(input_ids.shape)}."
            )
        if input_ids.size(1) > self.config.max_len:
            raise ValueError(
                f"Sequence length {input_ids.size(1)} exceeds max_len={self.config.max_len} "
                "of this encoder: truncate the inputs or build it with a larger max_len."
            )
        if attention_mask is None:
            return
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has "
                f"{tuple(input_ids.shape)}; they must match (1 = token, 0 = padding)."
            )
        empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"Rows {empty[:10]} of the batch have no tokens (attention_mask all 0): "
                "drop empty sequences before batching them."
            )


@torch.no_grad()
def attention_maps(
    model: TransformerEncoder, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> list[np.ndarray]:
    """Attention weights of every layer in eval mode: a list of (B, heads, T, T) numpy arrays."""
    device = model_device(model)
    mask = attention_mask.to(device) if attention_mask is not None else None
    with eval_mode(model):
        out = model(input_ids.to(device), mask, output_attentions=True)
    return [w.float().cpu().numpy() for w in out.attentions]


def plot_attention(
    weights,
    tokens: Sequence[str],
    ax=None,
    title: str | None = None,
    query_tokens: Sequence[str] | None = None,
    cmap: str = "magma",
):
    """Heatmap of one (queries, keys) attention matrix with tokens on the axes; returns (fig, ax)."""
    weights = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights)
    if weights.ndim != 2:
        raise ValueError(
            f"plot_attention takes one (queries, keys) matrix; got shape {weights.shape}. "
            "Index a layer, an example and a head first (maps[layer][i, head])."
        )
    query_tokens = list(tokens) if query_tokens is None else list(query_tokens)
    if weights.shape != (len(query_tokens), len(tokens)):
        raise ValueError(
            f"weights have shape {weights.shape} but there are {len(query_tokens)} query "
            f"and {len(tokens)} key tokens."
        )
    size = (max(3.0, 0.28 * len(tokens) + 1.5), max(2.0, 0.28 * len(query_tokens) + 1.2))
    fig, ax = axes(ax, size)
    image = ax.imshow(
        weights, cmap=cmap, vmin=0.0, vmax=max(float(weights.max()), 1e-6), aspect="auto"
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(query_tokens)), query_tokens, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title, fontsize=10)
    return fig, ax


def plot_positions(table: torch.Tensor | np.ndarray, dims: Sequence[int] = (0, 1, 6, 7)):
    """A (max_len, d_model) position table as a heatmap with a colorbar, and a few of its
    dimensions as curves over the position; returns (fig, (heatmap ax, curves ax))."""
    import matplotlib.pyplot as plt

    values = np.asarray(table.detach().cpu() if isinstance(table, torch.Tensor) else table)
    if values.ndim != 2:
        raise ValueError(f"plot_positions takes a (max_len, d_model) table; got {values.shape}.")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    image = top.imshow(values.T, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    fig.colorbar(image, ax=[top, bottom], label="value", fraction=0.04)
    top.set(ylabel="dimension", title="sinusoidal positional encodings")
    for d in (d for d in dims if d < values.shape[1]):
        bottom.plot(values[:, d], label=f"dimension {d}")
    bottom.set(xlabel="position", ylabel="value")
    bottom.legend(fontsize=8, ncol=len(dims))
    return fig, (top, bottom)


def plot_cls_attention(
    maps: Sequence[np.ndarray], index: int, tokens: Sequence[str], ax=None, title: str | None = None
):
    """What the first ([CLS]) token attends to, per layer and head, for example `index`; returns
    (fig, ax). Rows are labelled `L<layer> h<head>`, layers from 1 (as `attention_shares`
    numbers them) and heads from 0."""
    rows = np.concatenate([m[index, :, 0, : len(tokens)] for m in maps])  # (layers * heads, T)
    labels = [f"L{layer} h{head}" for layer, m in enumerate(maps, 1) for head in range(m.shape[1])]
    _, ax = axes(ax, (max(4.0, 0.3 * len(tokens) + 1.5), 0.3 * len(labels) + 1.2))
    fig, ax = plot_attention(rows, tokens, ax=ax, query_tokens=labels, title=title)
    ax.set_ylabel("[CLS] query: layer, head")
    return fig, ax
