"""The lesson's measured experiments, each one call: the KV cache, retrieval, RAG, fine-tuning.

Every function returns plain numbers and tidy frames; the sentences about them are in
`dlnb.lm.story`, the claims in `dlnb.claims`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dlnb import claims
from dlnb.lm import rag
from dlnb.lm import retrieval as ret
from dlnb.lm.decoder import Decoder, generate, tokens_per_second
from dlnb.lm.finetune import (
    accuracy,
    add_lora,
    parameter_counts,
    train_next_token,
)
from dlnb.lm.llm import LLM
from dlnb.lm.llm import generate as llm_generate


def bootstrap(
    ours: Sequence[float],
    baseline: Sequence[float],
    names: tuple[str, str],
    metric: str,
    *,
    higher_is_better: bool = True,
    unit: str = "examples",
    seed: int = 0,
) -> claims.Effect:
    """`claims.bootstrap_effect` over examples (called `unit` in sentences: "questions",
    "windows"), for a metric where lower may be better."""
    effect = claims.bootstrap_effect(ours, baseline, names=names, metric=metric, seed=seed)
    return dataclasses.replace(effect, higher_is_better=higher_is_better, unit=unit)


def kv_cache_check(model: Decoder, prompt: torch.Tensor, new_tokens: int) -> dict:
    """Greedy tokens with and without the KV cache (the same?), tokens per second of each, and how
    many positions each computes for `new_tokens` tokens after the prompt."""
    with_cache = generate(model, prompt, new_tokens, use_cache=True)
    without = generate(model, prompt, new_tokens, use_cache=False)
    p = prompt.shape[1]
    return {
        "same_tokens": bool(torch.equal(with_cache, without)),
        "tokens_per_s_cache": tokens_per_second(model, prompt, new_tokens, use_cache=True),
        "tokens_per_s_no_cache": tokens_per_second(model, prompt, new_tokens, use_cache=False),
        "positions_cache": p + new_tokens - 1,
        "positions_no_cache": sum(p + i for i in range(new_tokens)),
    }


def llm_speed(llm: LLM, prompt: str, new_tokens: int) -> dict:
    """Greedy tokens per second of one prompt with and without the KV cache (`min_new_tokens`
    forces the full length), and the model's parameter memory."""
    from dlnb.lm.llm import parameter_megabytes

    out = {}
    for name, cache in (("cache", True), ("no_cache", False)):
        start = time.perf_counter()
        llm_generate(llm, [prompt], new_tokens, min_new_tokens=new_tokens, use_cache=cache)
        out[f"tokens_per_s_{name}"] = new_tokens / (time.perf_counter() - start)
    out["parameters_mb"] = parameter_megabytes(llm.model)
    return out


def retrieval_benchmark(
    bm25: ret.BM25,
    question_vectors: Callable[[Sequence[str]], np.ndarray],
    passage_vectors: np.ndarray,
    tune: tuple[Sequence[str], Sequence[int]],
    test: tuple[Sequence[str], Sequence[int]],
) -> dict:
    """BM25, dense and hybrid retrieval of the test questions' pages (the hybrid's weight tuned on
    the tune questions). Returns the table (recall@1, recall@5, MRR, ms per query), the test ranks
    and scores of each method, the weight, its tuning MRRs and the test question vectors."""
    lexical_tune = bm25.scores(tune[0])
    dense_tune = ret.dense_scores(question_vectors(tune[0]), passage_vectors)
    weight, tuned = ret.tune_weight(lexical_tune, dense_tune, tune[1])
    lexical, lexical_ms = ret.timed_scores(bm25.scores, test[0])
    vectors, embed_ms = ret.timed_scores(question_vectors, test[0])
    dense, dot_ms = ret.timed_scores(lambda _: ret.dense_scores(vectors, passage_vectors), test[0])
    both = ret.hybrid(lexical, dense, weight)
    scores = {"BM25": lexical, "dense (MiniLM)": dense, "hybrid": both}
    ms = {"BM25": lexical_ms, "dense (MiniLM)": embed_ms + dot_ms}
    ms["hybrid"] = ms["BM25"] + ms["dense (MiniLM)"]
    ranks = {name: ret.ranks(s, test[1]) for name, s in scores.items()}
    table = pd.DataFrame(
        [{"method": n, **ret.metrics(r), "ms per query": ms[n]} for n, r in ranks.items()]
    ).set_index("method")
    return {
        "table": table,
        "ranks": ranks,
        "scores": scores,
        "weight": weight,
        "tune_mrr": tuned,
        "vectors": vectors,
    }


def index_comparison(
    passage_vectors: np.ndarray, query_vectors: np.ndarray, k: int, ef_search: Sequence[int]
) -> pd.DataFrame:
    """Exact (flat) against HNSW faiss indexes of the same vectors: build ms, ms per query and
    recall@k of the exact top k."""
    exact, build = ret.build_index(passage_vectors, "exact")
    truth, ms = ret.search(exact, query_vectors, k)
    rows = [{"index": "exact (flat)", "build ms": 1000 * build, "ms per query": ms, "recall": 1.0}]
    for ef in ef_search:
        index, build = ret.build_index(passage_vectors, "hnsw", ef_search=ef)
        found, ms = ret.search(index, query_vectors, k)
        rows.append(
            {
                "index": f"HNSW, ef_search={ef}",
                "build ms": 1000 * build,
                "ms per query": ms,
                "recall": ret.overlap_at_k(found, truth),
            }
        )
    return pd.DataFrame(rows).set_index("index")


def rag_answers(
    llm: LLM,
    pages: pd.DataFrame,
    questions: pd.DataFrame,
    cited: Sequence[int],
    *,
    answered: Sequence[bool] | None = None,
    closed_book: bool = True,
    prime: str = "The number of rows is",
    max_new_tokens: int = 8,
) -> pd.DataFrame:
    """Each question answered with its cited page (a row of `pages`) as context, and (with
    `closed_book`) without any context; both answers start from `prime`. A question the system
    holds back (`answered` False) is not sent to the model and counts as "I don't know". Adds
    answer and outcome columns."""
    tok = llm.tokenizer
    out = questions.reset_index(drop=True).copy()
    out["cited"] = list(cited)
    keep = np.ones(len(out), bool) if answered is None else np.asarray(answered, bool)
    with_page = [
        rag.rag_prompt(tok, q, pages.at[c, "name"], pages.at[c, "passage"]) + prime
        for q, c in zip(out["question"], out["cited"], strict=True)
    ]
    answers = np.array([rag.IDK] * len(out), dtype=object)
    if keep.any():
        picked = [p for p, k in zip(with_page, keep, strict=True) if k]
        answers[keep] = llm_generate(llm, picked, max_new_tokens)
    out["answer"] = [a if not k else f"{prime} {a}" for a, k in zip(answers, keep, strict=True)]
    out["outcome"] = rag.answer_table(list(answers), out["fact"].tolist(), keep.tolist())
    out["right page"] = out["cited"] == out["page"]
    if closed_book:
        without = [rag.closed_book_prompt(tok, q) + prime for q in out["question"]]
        closed = llm_generate(llm, without, max_new_tokens)
        out["closed-book answer"] = [f"{prime} {a}" for a in closed]
        out["closed-book outcome"] = rag.answer_table(closed, out["fact"].tolist())
    return out


def _finetune_run(base, method: str, seed: int, prompter, task: Mapping, settings: Mapping):
    """One fine-tuning run of a copy of `base` ("full fine-tuning" or "LoRA"): its row, model."""
    label_ids = prompter.label_ids(task["labels"])
    (prompts, y), (test_prompts, test_y) = task["train"], task["test"]
    torch.manual_seed(seed)
    model = copy.deepcopy(base)
    if method == "LoRA":
        model = add_lora(model, **settings["lora"])
    run = train_next_token(
        model,
        prompter,
        prompts,
        y,
        label_ids,
        steps=settings["steps"],
        lr=settings["lrs"][method],
        batch_size=settings["batch_size"],
        seed=seed,
    )
    trainable, total = parameter_counts(model)
    row = {
        "method": method,
        "seed": seed,
        "accuracy": accuracy(model, prompter, test_prompts, test_y, label_ids),
        "seconds per step": run["seconds_per_step"],
        "training state MB": run["state_mb"],
        "trainable": trainable,
        "total": total,
        "final loss": float(np.mean(run["losses"][-10:])),
    }
    return row, model


def compare_finetuning(
    base,
    prompter,
    task: Mapping,
    *,
    seeds: Sequence[int],
    steps: int,
    lrs: Mapping[str, float],
    lora: Mapping,
    batch_size: int = 8,
) -> tuple[pd.DataFrame, object]:
    """Full fine-tuning and LoRA (`lora`: keyword arguments of `add_lora`) of copies of `base`,
    one run per seed each, on `task` (see `fieldtask.field_task`), with the learning rate of
    each method in `lrs`. Returns one row per run (accuracy, seconds per step, training-state MB,
    trainable and total parameters) and the last LoRA model."""
    settings = {"steps": steps, "lrs": lrs, "lora": lora, "batch_size": batch_size}
    rows, last = [], None
    for seed in seeds:
        for method in ("full fine-tuning", "LoRA"):
            row, model = _finetune_run(base, method, seed, prompter, task, settings)
            rows.append(row)
            last = model if method == "LoRA" else last
    return pd.DataFrame(rows), last
