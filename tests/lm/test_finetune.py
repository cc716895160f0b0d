"""LoRA and full fine-tuning on the answer token; the adapter saved, loaded and merged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dlnb.lm import finetune as ft
from dlnb.lm.decoder import CharVocab, Decoder, DecoderConfig

PROMPTS = ["the data has prices", "the data has diamonds", "air quality new york", "the air"] * 4
Y = [0, 0, 1, 1] * 4
LABELS = ("economics", "history")


def test_token_prompts_score_the_token_after_each_prompt(tiny_llm):
    prompter = ft.TokenPrompts(tiny_llm.tokenizer)
    logits = prompter.logits(tiny_llm.model, ["the data", "how many rows does the dataset have"])
    alone = prompter.logits(tiny_llm.model, ["the data"])
    assert logits.shape == (2, len(tiny_llm.tokenizer))
    assert torch.allclose(logits[0], alone[0], atol=1e-4)  # left padding changes nothing
    assert len(prompter.label_ids(LABELS)) == 2


def test_char_prompts_pad_on_the_left_and_need_distinct_first_letters():
    vocab = CharVocab.fit("abcdefghijklmnopqrstuvwxyz :\n")
    model = Decoder(DecoderConfig(len(vocab), block_size=16, d_model=16, n_heads=2))
    prompter = ft.CharPrompts(vocab, 16)
    assert prompter.logits(model, ["short", "a much longer prompt than sixteen"]).shape == (
        2,
        len(vocab),
    )
    assert prompter.label_ids(["economics", "history"]) == vocab.encode("eh").tolist()
    with pytest.raises(ValueError, match="distinct"):
        prompter.label_ids(["medicine", "math"])


def test_lora_trains_a_small_share_and_both_methods_learn(tiny_llm):
    prompter = ft.TokenPrompts(tiny_llm.tokenizer)
    label_ids = prompter.label_ids(LABELS)
    full = copy.deepcopy(tiny_llm.model)
    lora = ft.add_lora(copy.deepcopy(tiny_llm.model), r=2, alpha=4)
    trainable, total = ft.parameter_counts(lora)
    # per layer, rank 2: q and o map 32 -> 32, k and v 32 -> 16 (two key/value heads of 8)
    assert trainable == 2 * (2 * 2 * (32 + 32) + 2 * 2 * (32 + 16))
    assert ft.parameter_counts(full) == (total - trainable,) * 2
    runs = {}
    for name, model, lr in (("full", full, 3e-3), ("lora", lora, 3e-2)):
        runs[name] = ft.train_next_token(
            model, prompter, PROMPTS, Y, label_ids, steps=25, lr=lr, batch_size=8
        )
        assert np.mean(runs[name]["losses"][-5:]) < np.mean(runs[name]["losses"][:5])
        assert ft.accuracy(model, prompter, PROMPTS, Y, label_ids) == 1.0
    assert runs["lora"]["state_mb"] < runs["full"]["state_mb"]


def test_the_adapter_round_trips_and_merges(tiny_llm, tmp_path):
    prompter = ft.TokenPrompts(tiny_llm.tokenizer)
    base = copy.deepcopy(tiny_llm.model)
    lora = ft.add_lora(copy.deepcopy(base), r=2)
    ft.train_next_token(lora, prompter, PROMPTS, Y, prompter.label_ids(LABELS), steps=5, lr=1e-2)
    out = ft.adapter_roundtrip(lora, base, prompter, PROMPTS[:4], tmp_path / "adapter")
    assert out["loaded_max_diff"] < 1e-5 and out["merged_max_diff"] < 1e-4
    assert out["merged_has_lora"] is False
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert 0 < out["adapter_mb"] == pytest.approx(ft.folder_megabytes(tmp_path / "adapter"))


def test_lora_works_on_the_decoder_from_scratch_too(tmp_path):
    vocab = CharVocab.fit("abcdefghijklmnopqrstuvwxyz :\n")
    torch.manual_seed(0)
    base = Decoder(DecoderConfig(len(vocab), block_size=16, d_model=16, n_heads=2))
    lora = ft.add_lora(copy.deepcopy(base), r=2, targets=ft.DECODER_TARGETS)
    assert ft.parameter_counts(lora)[0] == 2 * (2 * (16 + 48) + 2 * (16 + 16))
    prompter = ft.CharPrompts(vocab, 16)
    out = ft.adapter_roundtrip(lora, base, prompter, ["the data", "air"], tmp_path / "a")
    assert out["loaded_max_diff"] < 1e-5 and out["merged_max_diff"] < 1e-5
