"""A trained text classifier, ready to use: `fit_text` fine-tunes one on a `TextData` (from
`from_files`), `.predict(strings)` labels new texts, `.save(dir)` / `load_text_classifier(dir)`
keep it with its tokenizer and label names, offline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlnb.runtime import cpu_threads
from dlnb.text.finetune import MINILM, MeanPooledClassifier, finetune_classifier
from dlnb.text.loaders import text_loaders
from dlnb.text.reading import TextData
from dlnb.train.config import TrainConfig
from dlnb.train.loop import predict
from dlnb.train.report import Report

__all__ = ["TextClassifier", "fit_text", "load_text_classifier"]

KIND = "dlnb.text"


@dataclass
class TextClassifier:
    """A fine-tuned Hugging Face classifier (or `MeanPooledClassifier`) with its tokenizer, label
    names and input length."""

    model: nn.Module
    tokenizer: Any  # a Hugging Face tokenizer
    label_names: tuple[str, ...]
    checkpoint: str = MINILM
    max_length: int = 64
    report: Report | None = None  # on the test split, after `fit_text`

    def outputs(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (texts x classes) of raw strings."""
        if isinstance(texts, str):
            texts = [texts]
        loader = text_loaders(
            self.tokenizer,
            (list(texts), None),
            test=(list(texts), None),
            label_names=self.label_names,
            batch_size=64,
            max_length=self.max_length,
            bucket=False,
        ).test
        logits, _ = predict(self.model, loader)
        return torch.softmax(torch.from_numpy(logits), 1).numpy()

    def predict(self, texts: Sequence[str] | str) -> pd.DataFrame:
        """Per text: the text, its predicted `label` and each class's probability."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        probs = self.outputs(texts)
        frame = pd.DataFrame(probs, columns=[f"p({c})" for c in self.label_names])
        frame.insert(0, "label", np.asarray(self.label_names, dtype=object)[probs.argmax(1)])
        frame.insert(0, "text", texts)
        return frame

    def save(self, directory: str | Path) -> Path:
        """Write the weights (safetensors), the model config, the tokenizer and the labels (JSON)."""
        from dlnb.train.saving import save_model

        config: Any = self.model.config  # a Hugging Face model's PretrainedConfig
        config.id2label = dict(enumerate(self.label_names))
        config.label2id = {n: i for i, n in enumerate(self.label_names)}
        config.architectures = [type(self.model).__name__]
        meta = {
            "kind": KIND,
            "label_names": list(self.label_names),
            "checkpoint": self.checkpoint,
            "max_length": self.max_length,
            "pooling": "mean" if isinstance(self.model, MeanPooledClassifier) else "cls",
        }
        directory = save_model(directory, self.model, meta)
        config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        return directory


def load_text_classifier(directory: str | Path) -> TextClassifier:
    """The `TextClassifier` that `.save(directory)` wrote (weights' hash and shapes checked), offline."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from dlnb.train.saving import load_model_files, load_weights_into

    state, meta = load_model_files(directory)
    if meta.get("kind") != KIND:
        raise ValueError(
            f"{directory} holds a {meta.get('kind')!r} model, not a text classifier; "
            "load_tabular / load_image_classifier read the other kinds."
        )
    config = AutoConfig.from_pretrained(str(directory))
    names = tuple(meta["label_names"])
    model: nn.Module
    if meta.get("pooling", "cls") == "mean":
        model = MeanPooledClassifier(AutoModel.from_config(config), len(names))
    else:
        model = AutoModelForSequenceClassification.from_config(config)
    load_weights_into(model, state, str(directory))
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    return TextClassifier(model.eval(), tokenizer, names, meta["checkpoint"], meta["max_length"])


def fit_text(
    data: TextData,
    checkpoint: str = MINILM,
    *,
    config: TrainConfig | None = None,
    batch_size: int = 16,
    max_length: int = 64,
    tokenizer=None,
    threads: int | None = 1,
    pooling: Literal["cls", "mean"] = "cls",
) -> TextClassifier:
    """Fine-tune `checkpoint` on `data.train` (batches bucketed by length) and score it on `data.test`.

    `config` sets training (e.g. `class_weight="balanced"`, epochs, lr); by default 3 epochs at
    lr 5e-5 without a progress bar; a `checkpoint_dir` keeps the optimizer state only while
    training needs it (unless `keep_optimizer=True`). The result's `.report` is the test split's
    classification report (None when the test split is empty). `threads` caps torch's CPU threads while
    training, one by default like `fit_table`: on a busy 2-core machine one thread fine-tuned
    MiniLM several times faster than two (None: no cap). `pooling="mean"` reads the encoder by
    mean pooling (`MeanPooledClassifier`), as sentence-transformers checkpoints were trained.

    Args:
        data: the texts and labels (`from_files`), with an optional test split.
        checkpoint: the pretrained model to start from.
        config: training settings.
        batch_size: training batch size.
        max_length: texts are cut to this many tokens.
        tokenizer: the checkpoint's tokenizer when already loaded.
        threads: torch CPU threads while training (None: no cap).
        pooling: "cls" (the checkpoint's classification head) or "mean".
    """
    if not isinstance(data, TextData):
        raise TypeError(
            f"fit_text takes a TextData, not {type(data).__name__}: read your file, folder or "
            "DataFrame with dlnb.text.from_files(source, text=..., label=...) first."
        )
    config = config or TrainConfig(lr=5e-5, epochs=3, progress=False)
    with cpu_threads(threads):
        result = finetune_classifier(
            data.train,
            data.test if len(data.test_texts) else None,
            label_names=data.label_names,
            checkpoint=checkpoint,
            config=config,
            batch_size=batch_size,
            max_length=max_length,
            tokenizer=tokenizer,
            pooling=pooling,
        )
    model = result["model"].eval()
    return TextClassifier(
        model, result["tokenizer"], data.label_names, checkpoint, max_length, result["report"]
    )
