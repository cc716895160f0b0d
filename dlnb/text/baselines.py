"""Fair baselines for text transfer: settings tuned on folds, a frozen-encoder probe, a small encoder.

    C, scores = tune_on_folds(lambda tr, va, C: tfidf_classifier(tr, va, label_names=names, C=C),
                              (texts, y), [0.1, 1, 10, 100])
    features = sentence_embeddings(texts, tokenizer, load_encoder())   # frozen MiniLM, mean-pooled
    probe = probe_classifier((features[train], y[train]), (features[test], y[test]), C=1.0)
    scratch = scratch_classifier(train, test, tokenizer=tokenizer, label_names=names, config=config)

A setting is tuned only on the labelled examples a method is given (stratified folds of its own
training set), so no baseline sees labels the others do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from dlnb.models import eval_mode
from dlnb.runtime import pick_device
from dlnb.text.finetune import MINILM, quiet_loading, resolve_checkpoint, train_text_model
from dlnb.text.loaders import check_texts, encode_labels, tokenize
from dlnb.text.transformer import EncoderConfig, TransformerEncoder
from dlnb.train.config import TrainConfig

Split = tuple[Any, Any]


def _rows(x: Any, index: np.ndarray) -> Any:
    return x[index] if isinstance(x, np.ndarray) else [x[i] for i in index]


def tune_on_folds(
    method: Callable[[Split, Split, Any], Mapping[str, Any]],
    train: Split,
    values: Sequence,
    *,
    folds: int = 3,
    seed: int = 0,
    metric: str = "accuracy",
) -> tuple[Any, dict]:
    """The value with the best mean `metric` over stratified folds of `train`, and every mean.

    `method(fold_train, fold_valid, value)` trains on one part and scores the other; ties go to
    the first value listed.
    """
    from sklearn.model_selection import StratifiedKFold

    x, y = train
    y = np.asarray(y)
    if min(np.bincount(y)[np.unique(y)]) < folds:
        raise ValueError(f"Every class needs at least folds={folds} examples to tune on folds.")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    parts = list(splitter.split(np.zeros(len(y)), y))
    means = {
        value: float(
            np.mean(
                [method((_rows(x, a), y[a]), (_rows(x, b), y[b]), value)[metric] for a, b in parts]
            )
        )
        for value in values
    }
    return max(means, key=lambda v: means[v]), means


def load_encoder(checkpoint: str = MINILM):
    """The pretrained encoder of `checkpoint` without a head (`AutoModel`), in eval mode."""
    from transformers import AutoModel

    source, kwargs = resolve_checkpoint(checkpoint)
    with quiet_loading():
        return AutoModel.from_pretrained(source, **kwargs).eval()


@torch.no_grad()
def sentence_embeddings(
    texts: Sequence[str],
    tokenizer,
    encoder,
    *,
    max_length: int = 64,
    batch_size: int = 128,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Mean of a frozen encoder's last hidden states over each text's tokens: (texts, width)."""
    device = pick_device(device)
    ids = tokenize(tokenizer, texts, max_length)
    order = np.argsort([len(i) for i in ids])  # batches of similar length pad little
    out = np.zeros((len(ids), encoder.config.hidden_size), dtype=np.float32)
    with eval_mode(encoder.to(device)):
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            enc = tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            hidden = encoder(**enc).last_hidden_state.float()
            keep = enc["attention_mask"][..., None].float()
            out[rows] = ((hidden * keep).sum(1) / keep.sum(1)).cpu().numpy()
    return out


def probe_classifier(train: Split, test: Split, *, C: float = 1.0, seed: int = 0) -> dict:
    """Logistic regression on standardised frozen features: accuracy and predictions on `test`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    model.set_params(logisticregression__random_state=seed).fit(train[0], np.asarray(train[1]))
    predictions = model.predict(test[0])
    return {
        "accuracy": float((predictions == np.asarray(test[1])).mean()),
        "predictions": predictions,
        "model": model,
        "seconds": time.perf_counter() - start,
    }


def tfidf_classifier(
    train: Split,
    test: Split,
    *,
    label_names: Sequence[str],
    C: float = 10.0,
    ngram_range: tuple[int, int] = (1, 2),
    seed: int = 0,
) -> dict:
    """TF-IDF (word uni- and bigrams, sublinear tf) + logistic regression; accuracy on `test`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    y_train = encode_labels(train[1], label_names)
    y_test = encode_labels(test[1], label_names)
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=True),
        LogisticRegression(C=C, max_iter=2000, random_state=seed),
    )
    start = time.perf_counter()
    pipeline.fit(check_texts(train[0]), y_train)
    accuracy = float((pipeline.predict(check_texts(test[0])) == y_test).mean())
    return {"accuracy": accuracy, "model": pipeline, "seconds": time.perf_counter() - start}


def scratch_classifier(
    train: Split,
    test: Split | None,
    *,
    tokenizer,
    label_names: Sequence[str],
    config: TrainConfig,
    d_model: int = 64,
    n_layers: int = 2,
    batch_size: int = 32,
    max_length: int = 64,
) -> dict:
    """Notebook 03's `TransformerEncoder` from random weights on the tokenizer's ids, trained with `fit`.

    Returns what `train_text_model` does: accuracy and report on `test`, the model, the seconds.
    """

    def build() -> TransformerEncoder:
        torch.manual_seed(config.seed)
        encoder = EncoderConfig(
            vocab_size=len(tokenizer),
            num_classes=len(label_names),
            d_model=d_model,
            n_layers=n_layers,
            max_len=max_length,
            pooling="mean",
        )
        return TransformerEncoder(encoder)

    return train_text_model(
        build,
        train,
        test,
        tokenizer=tokenizer,
        label_names=label_names,
        config=config,
        batch_size=batch_size,
        max_length=max_length,
    )
