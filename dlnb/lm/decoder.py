"""A GPT-style decoder from scratch: causal self-attention, next-token prediction, a KV cache.

    vocab = CharVocab.fit(train_text)
    model = Decoder(DecoderConfig(vocab_size=len(vocab), block_size=64))
    logits, _ = model(ids)                       # (B, T, vocab): position t predicts token t + 1
    out = generate(model, prompt_ids, 40)        # greedy, with the KV cache

The block is the pre-norm transformer block of notebook 03 with one change: the causal mask, so
position t attends to positions 0..t only and the model can be trained to predict every next token
of a text at once. `generate(use_cache=True)` keeps each layer's keys and values, so each new token
costs one position instead of the whole context again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Cache = list[tuple[torch.Tensor, torch.Tensor]]
UNKNOWN = "\ufffd"  # stands for characters the training text never had


@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: id 0 is the unknown character, then the training text's characters."""

    chars: str

    @classmethod
    def fit(cls, text: str) -> CharVocab:
        """The sorted characters of `text`, after the unknown character."""
        if not text:
            raise ValueError("CharVocab.fit needs a non-empty text.")
        return cls(UNKNOWN + "".join(sorted(set(text) - {UNKNOWN})))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text`'s characters (unknown ones map to 0)."""
        index = {c: i for i, c in enumerate(self.chars)}
        return np.array([index.get(c, 0) for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of `ids`."""
        return "".join(self.chars[int(i)] for i in ids)


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes of a `Decoder`: vocabulary, context (`block_size`), width, heads and layers."""

    vocab_size: int
    block_size: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.0


def causal_mask(queries: int, keys: int | None = None) -> torch.Tensor:
    """(queries, keys) boolean mask, True where a query may attend: the last `queries` positions
    of a sequence of `keys` each see every key up to their own position, none after it."""
    keys = queries if keys is None else keys
    return torch.ones(queries, keys, dtype=torch.bool).tril(diagonal=keys - queries)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention under the causal mask, extending a cache of past keys/values."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(f"d_model={config.d_model} must be divisible by n_heads.")
        self.n_heads, self.dropout = config.n_heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, D) and the past keys/values -> output (B, T, D) and the keys/values so far."""
        B, T, D = x.shape
        q, k, v = (
            t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)
            for t in self.qkv(x).split(D, dim=-1)
        )
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        mask = causal_mask(T, k.shape[2]).to(x.device)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        d = config.d_model
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, past=None):
        """x (B, T, D) -> (B, T, D) and this layer's keys/values."""
        a, kv = self.attn(self.norm1(x), past)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.norm2(x))), kv


class Decoder(nn.Module):
    """Token and learned position embeddings, causal blocks, a final norm and a tied output layer."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.block_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # weight tying, as GPT-2
        self.apply(_init)

    def forward(self, ids: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        """ids (B, T) after the `cache`'s positions -> logits (B, T, vocab) and the new cache."""
        start = cache[0][0].shape[2] if cache else 0
        if start + ids.shape[1] > self.config.block_size:
            raise ValueError(
                f"{start + ids.shape[1]} positions exceed the context of {self.config.block_size}."
            )
        pos = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(pos)
        new: Cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None)
            new.append(kv)
        return self.head(self.norm(x)), new


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    probs = torch.softmax(logits / temperature, dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=generator).to(logits.device)


@torch.no_grad()
def generate(
    model: Decoder,
    prompt: torch.Tensor,
    new_tokens: int,
    *,
    use_cache: bool = True,
    temperature: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """`prompt` (B, T) followed by `new_tokens` tokens: greedy (temperature 0) or sampled.

    With the cache, the prompt is read once and each step feeds only the newest token; without it,
    each step reads the whole sequence again. Both give the same tokens; prompt plus new tokens must
    fit the model's context.
    """
    if prompt.shape[1] + new_tokens > model.config.block_size:
        raise ValueError(
            f"A prompt of {prompt.shape[1]} plus {new_tokens} new tokens exceeds the context of "
            f"{model.config.block_size}."
        )
    was_training, generator = model.training, torch.Generator().manual_seed(seed)
    model.eval()
    prompt = prompt.to(next(model.parameters()).device)
    out, cache = prompt, None
    step_input = prompt
    for _ in range(new_tokens):
        logits, new_cache = model(step_input, cache) if use_cache else model(out)
        nxt = _pick(logits[:, -1], temperature, generator)
        out = torch.cat([out, nxt], dim=1)
        cache, step_input = (new_cache, nxt) if use_cache else (None, out)
    model.train(was_training)
    return out


def tokens_per_second(
    model: Decoder, prompt: torch.Tensor, new_tokens: int, use_cache: bool, repeats: int = 3
) -> float:
    """Generated tokens per second (best of `repeats` runs, after a warm-up run)."""
    generate(model, prompt, 2, use_cache=use_cache)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        generate(model, prompt, new_tokens, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return new_tokens * prompt.shape[0] / best


def batch(
    ids: np.ndarray, block: int, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` random windows of `block` tokens and the same windows shifted by one (the targets)."""
    if len(ids) <= block:
        raise ValueError(f"The text has {len(ids)} tokens, fewer than a window of {block} + 1.")
    starts = rng.integers(0, len(ids) - block, size=size)
    x = np.stack([ids[s : s + block] for s in starts])
    y = np.stack([ids[s + 1 : s + block + 1] for s in starts])
    return torch.from_numpy(x), torch.from_numpy(y)


def windows(ids: np.ndarray, block: int) -> np.ndarray:
    """`ids` cut into consecutive windows of `block` tokens (the remainder is dropped)."""
    n = len(ids) // block
    if n == 0:
        raise ValueError(f"The text has {len(ids)} tokens, fewer than one window of {block}.")
    return ids[: n * block].reshape(n, block)


@torch.no_grad()
def window_nll(model: Decoder, ids: np.ndarray, block: int, batch_size: int = 64) -> np.ndarray:
    """Mean negative log-likelihood (nats) of each window's tokens 2..block, each predicted from
    the window's earlier tokens: one number per window, for intervals over windows."""
    model.eval()
    out = []
    device = next(model.parameters()).device
    for chunk in np.array_split(windows(ids, block), max(1, len(ids) // block // batch_size)):
        x = torch.from_numpy(chunk).to(device)
        logits, _ = model(x[:, :-1])
        nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        out.append(nll.mean(1).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def text_bits(model: Decoder, vocab: CharVocab, texts, block: int | None = None) -> np.ndarray:
    """Bits per character of each text under the decoder: every character after the first is
    predicted once, from up to `block - 1` characters before it (windows overlapping by one)."""
    block = block or model.config.block_size
    model.eval()
    device = next(model.parameters()).device
    out = []
    for text in texts:
        ids = torch.from_numpy(vocab.encode(text)).to(device)
        if len(ids) < 2:
            raise ValueError("text_bits needs texts of at least two characters.")
        total = 0.0
        for start in range(0, len(ids) - 1, block - 1):
            window = ids[start : start + block][None]
            logits, _ = model(window[:, :-1])
            total += float(F.cross_entropy(logits[0], window[0, 1:], reduction="sum"))
        out.append(total / (len(ids) - 1) / np.log(2))
    return np.array(out)
