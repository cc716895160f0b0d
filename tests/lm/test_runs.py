"""The lesson's experiments end to end on tiny inputs: cache check, retrieval, RAG, fine-tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dlnb.lm import runs
from dlnb.lm.decoder import CharVocab, Decoder, DecoderConfig
from dlnb.lm.finetune import CharPrompts
from dlnb.lm.retrieval import BM25


def test_bootstrap_turns_lower_is_better_into_the_right_verdict():
    lower = runs.bootstrap(
        [1.0, 1.1, 0.9, 1.0] * 5,
        [2.0, 2.1, 1.9, 2.0] * 5,
        ("a", "b"),
        "loss",
        higher_is_better=False,
    )
    assert lower.verdict == "better" and lower.high < 0
    higher = runs.bootstrap([1.0, 1.1, 0.9, 1.0] * 5, [2.0, 2.1, 1.9, 2.0] * 5, ("a", "b"), "acc")
    assert higher.verdict == "worse"


def test_the_kv_cache_check_counts_positions_and_agrees():
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(10, block_size=16, d_model=16, n_heads=2))
    check = runs.kv_cache_check(model, torch.randint(0, 10, (1, 4)), 6)
    assert check["same_tokens"] is True
    assert check["positions_cache"] == 9 and check["positions_no_cache"] == 4 + 5 + 6 + 7 + 8 + 9
    assert check["tokens_per_s_cache"] > 0 and check["tokens_per_s_no_cache"] > 0


def test_llm_speed_reports_both_ways_and_memory(tiny_llm):
    speed = runs.llm_speed(tiny_llm, "how many rows", 4)
    assert speed["tokens_per_s_cache"] > 0 and speed["tokens_per_s_no_cache"] > 0
    assert speed["parameters_mb"] > 0


def _keyword_vectors(texts):
    """A stand-in embedder: one dimension per topic word."""
    words = ["diamonds", "air", "galton"]
    v = np.array([[float(w in t.lower()) for w in words] for t in texts]) + 1e-3
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_retrieval_benchmark_tunes_on_tune_and_reports_on_test():
    passages = ["Prices of diamonds", "Air quality in New York", "Galton heights of parents"]
    bench = runs.retrieval_benchmark(
        BM25(passages),
        _keyword_vectors,
        _keyword_vectors(passages),
        tune=(["diamonds prices", "air in new york"], [0, 1]),
        test=(["galton parents", "diamonds"], [2, 0]),
    )
    assert list(bench["table"].index) == ["BM25", "dense (MiniLM)", "hybrid"]
    assert bench["table"]["recall@1"].tolist() == [1.0, 1.0, 1.0]
    assert bench["weight"] in bench["tune_mrr"] and bench["vectors"].shape == (2, 3)
    table = runs.index_comparison(_keyword_vectors(passages), bench["vectors"], k=2, ef_search=(4,))
    assert table["recall"].tolist() == [1.0, 1.0]


def test_rag_answers_score_both_conditions_and_hold_back(tiny_llm, pages):
    qs = pd.DataFrame(
        {
            "question": ["how many rows ?"] * 3,
            "page": [0, 1, 2],
            "fact": ["20", "30", "40"],
            "split": ["test"] * 3,
        }
    )
    out = runs.rag_answers(
        tiny_llm, pages, qs, cited=[0, 2, 2], answered=[True, True, False], max_new_tokens=3
    )
    assert out["right page"].tolist() == [True, False, True]
    assert out.loc[2, "outcome"] == "abstained" and "I don't know" in out.loc[2, "answer"]
    assert set(out["outcome"]) <= {"correct", "abstained", "hallucinated"}
    assert out["answer"][:2].str.startswith("The number of rows is").all()
    assert set(out["closed-book outcome"]) <= {"correct", "abstained", "hallucinated"}
    alone = runs.rag_answers(
        tiny_llm, pages, qs, cited=[0, 1, 2], closed_book=False, max_new_tokens=3
    )
    assert "closed-book answer" not in alone and alone["right page"].all()


def test_compare_finetuning_runs_both_methods_on_every_seed():
    vocab = CharVocab.fit("abcdefghijklmnopqrstuvwxyz :\n")
    torch.manual_seed(0)
    base = Decoder(DecoderConfig(len(vocab), block_size=16, d_model=16, n_heads=2))
    prompts = ["prices of goods", "heights of men"] * 4
    task = {
        "train": (prompts, np.array([0, 1] * 4)),
        "test": (prompts, np.array([0, 1] * 4)),
        "labels": ("economics", "history"),
    }
    frame, lora = runs.compare_finetuning(
        base,
        CharPrompts(vocab, 16),
        task,
        seeds=[0, 1],
        steps=3,
        lrs={"full fine-tuning": 1e-3, "LoRA": 1e-2},
        lora={"r": 2, "targets": ("qkv",)},
    )
    assert sorted(frame["method"].unique()) == ["LoRA", "full fine-tuning"] and len(frame) == 4
    assert frame["accuracy"].between(0, 1).all()
    shares = frame.groupby("method")["trainable"].first() / frame.groupby("method")["total"].first()
    assert shares["LoRA"] < 0.1 and shares["full fine-tuning"] == pytest.approx(1.0)
    assert hasattr(lora, "save_pretrained")
    assert base.blocks[0].attn.qkv.weight.requires_grad  # the base itself was copied, not changed
