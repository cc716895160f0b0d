"""Fair baselines for text transfer: settings tuned on folds, a frozen-encoder probe, a small encoder.

    C, scores = tune_on_folds(lambda tr, va, C: tfidf_classifier(tr, va, label_names=names, C=C),
                              (texts, y), [0.1, 1, 10, 100])
    features = sentence_embeddings(texts, tokenizer, load_encoder())   # frozen MiniLM, mean-pooled
    probe = probe_classifier((features[train], y[train]), (features[test], y[test]), C=1.0)
    scratch = scratch_classifier(train, test, tokenizer=tokenizer, label_names=names, config=config)
    bag = bag_classifier(train, test, tokenizer=tokenizer, label_names=names, config=config)

A setting is tuned only on the labelled examples a method is given (stratified folds of its own
training set), so no baseline sees labels the others do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

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
    """Logistic regression on standardised frozen features: accuracy and predictions on `test`.

    Features that do not vary over the training texts (a mean-pooled encoder has a few dead
    dimensions, ~1e-33) are dropped first: standardising them would only blow up rounding noise.
    """
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    model = make_pipeline(
        VarianceThreshold(1e-12), StandardScaler(), LogisticRegression(C=C, max_iter=2000)
    )
    model.set_params(logisticregression__random_state=seed).fit(train[0], np.asarray(train[1]))
    predictions = model.predict(test[0])
    return {
        "accuracy": float((predictions == np.asarray(test[1])).mean()),
        "predictions": predictions,
        "model": model,
        "seconds": time.perf_counter() - start,
    }


def probe_head(model) -> nn.Linear:
    """A fitted `probe_classifier` model (drop constant features, standardise, logistic
    regression) as one `nn.Linear` on the raw features: the same class probabilities, ready to
    start fine-tuning from ("linear probe, then fine-tune"). Dropped features get weight 0.

    Two classes (one row of coefficients) become two rows of half the score each, -s/2 and +s/2,
    which a softmax turns into exactly the logistic regression's probabilities.
    """
    keep, scaler, regression = model[0].get_support(), model[1], model[-1]
    kept = regression.coef_ / scaler.scale_
    weight = np.zeros((len(kept), keep.size))
    weight[:, keep] = kept
    bias = regression.intercept_ - kept @ scaler.mean_
    if len(weight) == 1:
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-1.0, 1.0]) * bias / 2
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return head


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


class BagOfEmbeddings(nn.Module):
    """A fastText-style text classifier from random weights: each token id gets a learned vector,
    a text is the mean of its tokens' vectors, dropout, then a linear layer.

    Order-blind and small (vocabulary x `dim` weights), it learns from a few dozen labelled texts
    per class, where a transformer from scratch stays at the majority rate.
    """

    def __init__(self, vocab_size: int, num_classes: int, dim: int = 64, dropout: float = 0.3):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (batch, classes) of a batch of token ids (padding masked out of the mean)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keep = attention_mask[..., None].to(self.head.weight.dtype)
        mean = (self.embed(input_ids) * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.head(self.dropout(mean))


def bag_classifier(
    train: Split,
    test: Split | None,
    *,
    tokenizer,
    label_names: Sequence[str],
    config: TrainConfig,
    dim: int = 64,
    batch_size: int = 16,
    max_length: int = 64,
) -> dict:
    """A `BagOfEmbeddings` from random weights (seeded by `config.seed`) on the tokenizer's ids,
    trained with `fit`; returns what `train_text_model` does.

    Args:
        train: (texts, labels) to train on.
        test: (texts, labels) to score once after training, or None.
        tokenizer: a Hugging Face tokenizer; its vocabulary sizes the embedding table.
        label_names: the classes.
        config: training settings (epochs, lr, schedule, seed).
        dim: width of the token vectors.
        batch_size: training batch size.
        max_length: texts are cut to this many tokens.
    """

    def build() -> BagOfEmbeddings:
        torch.manual_seed(config.seed)
        return BagOfEmbeddings(len(tokenizer), len(label_names), dim)

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
