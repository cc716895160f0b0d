"""A demo text model worth explaining: a linear probe on frozen sentence embeddings, with the
report a learner needs beside the widget (accuracy with its interval, recall per class, the
majority-class rate, and what the training texts were about).

    data = sentiment_tweets(2000, 600, seed=0)             # negative / positive, balanced
    fit = fit_sentence_probe(*data["train"], tokenizer, text.load_encoder(), seed=0)
    report = evaluate_demo(fit, tokenizer, data)           # on the held-out tweets
    display(Markdown(report.markdown()))

The probe is an `nn.Module` (`SentenceProbe`: encoder, masked mean pooling, linear head), so the
attributions explain exactly the model whose accuracy the report gives.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dlnb import claims
from dlnb.data.registry import load
from dlnb.models import eval_mode
from dlnb.recording import record
from dlnb.runtime import model_device
from dlnb.text import sentence_embeddings, tokenize, tune_on_folds

DEMO_CLASSES = ("negative", "positive")
PROBE_GRID = (0.01, 0.03, 0.1)


def sentiment_tweets(train_size: int | None, test_size: int | None, seed: int = 0) -> dict:
    """Negative and positive tweets of the `tweets` dataset (neutral ones left out), as many of
    each class, drawn at random with `seed`: {"train": (texts, y), "test": (texts, y),
    "label_names"}. A size of None takes every tweet of the smaller class, and as many of the other.
    """
    tweets = load("tweets")
    names = [str(n) for n in tweets["label_names"]]
    rng = np.random.default_rng(seed)
    out: dict = {"label_names": DEMO_CLASSES}
    for split, size in (("train", train_size), ("test", test_size)):
        ys = np.asarray(tweets[f"y_{split}"])
        members = [np.flatnonzero(ys == names.index(c)) for c in DEMO_CLASSES]
        per_class = min(len(m) for m in members)
        if size is not None:
            if size // 2 > per_class:
                raise ValueError(
                    f"{split}: {size} tweets ({size // 2} per class) asked for, but only "
                    f"{per_class} of the smaller class are there."
                )
            per_class = size // 2
        keep = np.concatenate([rng.choice(m, per_class, replace=False) for m in members])
        rng.shuffle(keep)
        texts = [str(tweets[f"text_{split}"][i]) for i in keep]
        labels = np.array([DEMO_CLASSES.index(names[ys[i]]) for i in keep], dtype=np.int64)
        out[split] = (texts, labels)
    return out


class SentenceProbe(nn.Module):
    """A frozen encoder, the mean of its last hidden states over the text's tokens, a linear head:
    `model(input_ids, attention_mask) -> logits`. The encoder's own pooler is dropped (unused)."""

    def __init__(self, encoder: nn.Module, head: nn.Linear):
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            setattr(encoder, "pooler", None)  # noqa: B010 - a Hugging Face model's optional part
        self.encoder: Any = encoder
        self.head = head

    def get_input_embeddings(self) -> nn.Module:
        """The token embedding layer (what text attributions integrate over)."""
        return self.encoder.get_input_embeddings()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (N, classes) of a batch of token ids."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keep = attention_mask[..., None].to(hidden.dtype)
        return self.head((hidden * keep).sum(1) / keep.sum(1).clamp(min=1))


@dataclass
class ProbeFit:
    """A fitted `SentenceProbe`, the regularisation it was given and how that was chosen."""

    model: SentenceProbe
    C: float
    fold_scores: dict
    train_labels: np.ndarray
    train_texts: list[str] = field(repr=False, default_factory=list)


def _folded_head(mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, bias: np.ndarray):
    """A logistic regression on standardised features as one `nn.Linear` on the raw features.

    Two classes (one row of coefficients) become two rows of half the score each, +-s/2: the
    same probabilities, and each class's logit moves with the evidence (so either can be explained).
    """
    weight, intercept = coef / scale, bias - (coef / scale) @ mean
    if len(weight) == 1:
        weight, intercept = np.vstack([-weight / 2, weight / 2]), np.array([-1, 1]) * intercept / 2
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))
    return head


def fit_sentence_probe(
    texts: Sequence[str],
    labels: Sequence[int],
    tokenizer,
    encoder: nn.Module,
    *,
    grid: Sequence[float] = PROBE_GRID,
    seed: int = 0,
    max_length: int = 512,
) -> ProbeFit:
    """Logistic regression on `encoder`'s mean-pooled embeddings of `texts`, its inverse
    regularisation C chosen from `grid` on 3 stratified folds of the training texts only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from dlnb.text import probe_classifier

    y = np.asarray(labels)
    features = sentence_embeddings(texts, tokenizer, encoder, max_length=max_length)
    C, scores = tune_on_folds(
        lambda tr, va, c: probe_classifier(tr, va, C=c, seed=seed), (features, y), grid, seed=seed
    )
    scaler = StandardScaler().fit(features)
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(features), y)
    head = _folded_head(scaler.mean_, scaler.scale_, clf.coef_, clf.intercept_)
    probe = SentenceProbe(encoder, head.to(model_device(encoder))).eval()
    return ProbeFit(probe, float(C), scores, y, list(texts))


@torch.no_grad()
def predict_texts(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 512,
) -> np.ndarray:
    """Class probabilities (N, classes) of `model(input_ids, attention_mask)` for `texts`, in
    batches of similar length."""
    ids = tokenize(tokenizer, texts, max_length)
    order = np.argsort([len(i) for i in ids])
    out: np.ndarray | None = None
    device = model_device(model)
    with eval_mode(model):
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            enc = tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
            logits = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            probs = getattr(logits, "logits", logits).softmax(dim=1).float().cpu().numpy()
            out = np.zeros((len(ids), probs.shape[1]), np.float32) if out is None else out
            out[rows] = probs
    return out if out is not None else np.zeros((0, 0), np.float32)


def tweet_tags(texts: Sequence[str], k: int = 8) -> list[tuple[str, int]]:
    """The `k` most frequent @mentions and #hashtags of `texts` (lower case), with counts."""
    counts = Counter(t.lower() for text in texts for t in re.findall(r"[@#]\w{2,}", text))
    return counts.most_common(k)


@dataclass(frozen=True)
class OutOfDomain:
    """Accuracy of a demo model on labelled texts unlike its training data."""

    name: str
    accuracy: float
    low: float
    high: float
    n: int

    def sentence(self) -> str:
        """'On 120 reviews ..., it is right 62.5% of the time (95 % CI ...).'"""
        return (
            f"Out of its domain, on {self.n:,} {self.name}, it is right {self.accuracy:.1%} of the "
            f"time (95 % CI {self.low:.1%} to {self.high:.1%})."
        )


def out_of_domain(
    model: nn.Module, tokenizer, texts: Sequence[str], labels: Sequence[int], name: str
) -> OutOfDomain:
    """Score `model` on labelled texts from elsewhere (same classes, another kind of text)."""
    correct = (predict_texts(model, tokenizer, texts).argmax(1) == np.asarray(labels)).astype(float)
    mean, low, high = claims.t_interval(correct)
    return OutOfDomain(name, mean, low, high, len(correct))


@dataclass
class DemoReport:
    """How good a demo model is on held-out texts, and what it was trained on."""

    name: str
    classes: tuple[str, ...]
    train_counts: dict[str, int]
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    recall: dict[str, float]
    majority: float
    effect: claims.Effect
    tags: list[tuple[str, int]]
    C: float = 0.0
    elsewhere: list[OutOfDomain] = field(default_factory=list)
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    min_recall_ok: float = 0.7
    margin: float = 0.1

    @property
    def test_size(self) -> int:
        """Held-out texts the numbers come from."""
        return self.effect.n

    @property
    def learned(self) -> bool:
        """Better than always answering the most common class, by `margin` at the interval's low end."""
        return self.effect.verdict == "better" and self.effect.low >= self.margin

    def markdown(self) -> str:
        """The card to show beside the widget: quality, recall per class, training domain."""
        trained = ", ".join(f"{n:,} {c}" for c, n in self.train_counts.items())
        recalls = ", ".join(f"{c} {r:.1%}" for c, r in self.recall.items())
        quality = (
            f"On {self.test_size:,} held-out tweets it is right {self.accuracy:.1%} of the time "
            f"(95 % CI {self.accuracy_low:.1%} to {self.accuracy_high:.1%}); always answering the "
            f"most common training class would score {self.majority:.1%}. {self.effect.sentence()}"
        )
        if not self.learned:
            quality += (
                f" **This model did not beat the majority class by {self.margin:.2f}: it is no "
                "demo, and its colours explain noise.**"
            )
        weak = [c for c, r in self.recall.items() if r < self.min_recall_ok]
        recall = (
            f"Recall per class (the share of each class's held-out tweets it finds): {recalls}."
        )
        if weak:
            recall += (
                f" It misses many {' and '.join(weak)} tweets: expect those to come back as "
                "another class."
            )
        tags = ", ".join(t for t, _ in self.tags)
        domain = (
            f"**Domain.** It learned from {trained} English tweets, most often about {tags}. "
            f"It knows only {' / '.join(self.classes)}: a neutral text is forced into one of "
            "them, and text unlike those tweets (a film review, a poem, a long paragraph) may "
            "come back wrong."
        )
        for other in self.elsewhere:
            domain += " " + other.sentence()
        return f"**The model:** {self.name}.\n\n{quality}\n\n{recall}\n\n{domain}"

    def record(self, prefix: str) -> None:
        """Record accuracy, its interval, recall per class and the effect over the majority."""
        record(f"{prefix}_accuracy", self.accuracy)
        record(f"{prefix}_accuracy_low", self.accuracy_low)
        for c, r in self.recall.items():
            record(f"{prefix}_recall_{c}", r)
        record(f"{prefix}_min_recall", min(self.recall.values()))
        record(f"{prefix}_learned", self.learned)
        for other in self.elsewhere:
            record(f"{prefix}_out_of_domain_accuracy", other.accuracy)
        self.effect.record(f"{prefix}_minus_majority")


def demo_report(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    train_labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    *,
    name: str,
    tags: list[tuple[str, int]],
    C: float = 0.0,
    elsewhere: Sequence[OutOfDomain] = (),
) -> DemoReport:
    """A `DemoReport` from test labels and predicted probabilities (no model needed)."""
    y, train = np.asarray(y_true), np.asarray(train_labels)
    predicted = np.asarray(probabilities).argmax(axis=1)
    correct = (predicted == y).astype(float)
    majority_class = np.bincount(train, minlength=len(classes)).argmax()
    effect = claims.bootstrap_effect(
        correct,
        (y == majority_class).astype(float),
        names=("The probe", "always answering the majority class"),
    )
    mean, low, high = claims.t_interval(correct)
    return DemoReport(
        name=name,
        classes=tuple(classes),
        train_counts={c: int((train == i).sum()) for i, c in enumerate(classes)},
        accuracy=mean,
        accuracy_low=low,
        accuracy_high=high,
        recall={c: float(correct[y == i].mean()) for i, c in enumerate(classes) if (y == i).any()},
        majority=claims.majority_rate(train.tolist(), y.tolist()),
        effect=effect,
        tags=tags,
        C=C,
        elsewhere=list(elsewhere),
        probabilities=np.asarray(probabilities),
    )


def evaluate_demo(
    fit: ProbeFit,
    tokenizer,
    data: dict,
    *,
    encoder_name: str,
    elsewhere: Sequence[OutOfDomain] = (),
) -> DemoReport:
    """The report of a fitted probe on `data["test"]` (from `sentiment_tweets`), with any
    `out_of_domain` scores."""
    texts, y = data["test"]
    probabilities = predict_texts(fit.model, tokenizer, texts)
    name = (
        f"a linear probe (logistic regression, C = {fit.C:g} chosen on 3 folds of its training "
        f"tweets) on frozen {encoder_name} sentence embeddings"
    )
    return demo_report(
        y,
        probabilities,
        fit.train_labels,
        data["label_names"],
        name=name,
        tags=tweet_tags(fit.train_texts),
        C=fit.C,
        elsewhere=elsewhere,
    )


def example_picks(
    y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray, min_confidence: float = 0.8
) -> list[int]:
    """Indices of one clear right answer per class (the first predicted right with probability of
    at least `min_confidence`, else the most confident right one), then of the first mistake."""
    y, p = np.asarray(y_true), np.asarray(probabilities)
    predicted, confidence = p.argmax(1), p.max(1)
    picks = []
    for c in np.unique(y):
        right = np.flatnonzero((y == c) & (predicted == c))
        if len(right):
            clear = right[confidence[right] >= min_confidence]
            picks.append(int(clear[0] if len(clear) else right[confidence[right].argmax()]))
    mistakes = np.flatnonzero(predicted != y)
    return picks + ([int(mistakes[0])] if len(mistakes) else [])


def try_texts(model: nn.Module, tokenizer, texts: Sequence[str], classes: Sequence[str]):
    """A table of `texts` with the class the model predicts and its probability."""
    import pandas as pd

    probabilities = predict_texts(model, tokenizer, texts)
    best = probabilities.argmax(1)
    return pd.DataFrame(
        {
            "text": list(texts),
            "predicted": [str(classes[i]) for i in best],
            "probability": probabilities[np.arange(len(best)), best],
        }
    )
