"""Text fixtures: the offline MiniLM tokenizer and a one-layer BERT checkpoint beside it."""

import pytest


@pytest.fixture(scope="session")
def tokenizer():
    from dlnb.text.finetune import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def tiny_checkpoint(tmp_path, tokenizer):
    """A one-layer BERT config next to the MiniLM tokenizer: the same code path, a fraction of the cost."""
    from transformers import BertConfig

    BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)
