"""Language-model fixtures that need no download: a word-level tokenizer with a chat template and a
tiny randomly initialised Llama, a synthetic R documentation page, one CPU thread."""

from __future__ import annotations

import pytest

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = (
    "the a of is how many rows does dataset data have number context from r documentation page "
    "question answer with economics history medicine psychology field which this are in frame "
    "observations on variables you concise assistant briefly system user assistant prices "
    "diamonds air quality new york i don't know"
).split()


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models run faster on one thread of a shared CPU."""
    yield


@pytest.fixture(scope="session")
def tokenizer():
    """A word-level tokenizer (digits split one by one) with ChatML special tokens and template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    symbols = list("0123456789.,:?!'\"-()\n") + ["\\", "&"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + symbols + WORDS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture
def tiny_llm(tokenizer):
    """A 2-layer Llama with random weights behind the `LLM` interface (context 256 positions)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from dlnb.lm.llm import LLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.pad_token_id,
    )
    return LLM(LlamaForCausalLM(config).eval(), tokenizer, "a tiny random Llama", 0.0)


PAGE = """+------------+-------------------+
| diamonds   | R Documentation   |
+------------+-------------------+

Prices of 50,000 round cut diamonds
-----------------------------------

Description
~~~~~~~~~~~

A dataset containing the prices and other attributes of almost 54,000
diamonds.

Usage
~~~~~

::

    data(diamonds)

Format
~~~~~~

A data frame with 53,940 rows and 10 variables

Details
~~~~~~~

-  price. price in US dollars
"""


def page(title: str, rows: int | None, description: str = "Some measurements.") -> str:
    """A small R documentation page with `title`, `description` and (unless None) a row count."""
    fmt = f"A data frame with {rows} observations on 3 variables." if rows else "A list."
    return (
        f"| x | R Documentation |\n\n{title}\n{'-' * len(title)}\n\nDescription\n~~~~~~~~~~~\n\n"
        f"{description}\n\nFormat\n~~~~~~\n\n{fmt}\n"
    )


@pytest.fixture
def pages():
    """Twelve synthetic pages: ten answerable, one duplicate title pair, one without a count."""
    from dlnb.lm.corpus import pages_frame

    titles = [f"Data on topic {w}" for w in "abcdefghij"]
    texts = [
        page(t, 10 * (i + 2), f"Measurements about {t.lower()}.") for i, t in enumerate(titles)
    ]
    texts += [page("Data on topic a", 99), page("No count here", None)]
    names = [f"d{i}" for i in range(len(texts))]
    return pages_frame(["pkg"] * len(texts), names, texts)
