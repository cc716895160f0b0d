"""Transfer learning for text, measured fairly: the baselines a fine-tuned encoder is compared with,
each given the same labelled texts, and the plots of the comparison.

    setup = Baselines(task, tokenizer, load_encoder())
    setup.tune_scratch(small_subset, held_out, lrs=(3e-3, 1e-2, 3e-2))
    curve = experiments.data_efficiency({"TF-IDF": setup.tfidf, "frozen probe": setup.probe,
                                         "from scratch": setup.scratch}, task.train_y, sizes, seeds)

Every method is scored on the task's fixed test set; a setting is tuned only on labels the method
is given (folds of its own subset), except the from-scratch model's learning rate, tuned once on
training texts outside every subset (extra labels the others do not see: it favours that baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlnb.experiments import plot_data_efficiency
from dlnb.plots import axes
from dlnb.runtime import cpu_threads
from dlnb.text.baselines import (
    bag_classifier,
    probe_classifier,
    probe_head,
    sentence_embeddings,
    tfidf_classifier,
    tune_on_folds,
)
from dlnb.text.loaders import epochs_for
from dlnb.text.tasks import TextTask
from dlnb.train.config import TrainConfig

__all__ = ["Baselines", "plot_seed_scores", "plot_transfer_curve"]

TFIDF_C = (0.3, 3.0, 30.0)
PROBE_C = (0.01, 0.1, 1.0)


@dataclass
class Baselines:
    """TF-IDF, a frozen-encoder probe and a bag of embeddings from scratch on one `TextTask`.

    Each method takes (indices of training texts, seed) and returns a dict with `accuracy` on the
    task's test set (and, for the trained networks, `train_accuracy`): the shape
    `experiments.data_efficiency` runs, which times each call (tuning included). The probe embeds
    each text once and reuses it (the test texts at its first call).
    """

    task: TextTask
    tokenizer: Any
    encoder: Any
    max_length: int = 64
    device: str = "auto"
    scratch_lr: float = 1e-2
    scratch_steps: int = 120  # at least this many optimizer steps, however small the subset
    scratch_batch: int = 16
    _features: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _probes: dict[tuple[bytes, int], Any] = field(default_factory=dict, repr=False)
    _test_features: np.ndarray | None = field(default=None, repr=False)

    def tfidf(self, indices: np.ndarray, seed: int) -> dict:
        """TF-IDF + logistic regression, `C` tuned on 3 folds of the subset itself."""
        names = self.task.label_names

        def run(train, valid, C):
            return tfidf_classifier(train, valid, label_names=names, C=C, seed=seed)

        C, _ = tune_on_folds(run, self.task.subset(indices), TFIDF_C, seed=seed)
        result = run(self.task.subset(indices), self.task.test, C)
        return {"accuracy": result["accuracy"], "model": result["model"], "C": C}

    def _embed(self, texts: list[str]) -> np.ndarray:
        return sentence_embeddings(
            texts, self.tokenizer, self.encoder, max_length=self.max_length, device=self.device
        )

    def embed_training(self, indices: Sequence[int] | np.ndarray) -> int:
        """Embed (once) the training texts at `indices` not embedded yet; returns how many were."""
        new = [int(i) for i in np.unique(np.asarray(indices)) if int(i) not in self._features]
        if new:
            vectors = self._embed([self.task.train_texts[i] for i in new])
            self._features.update(zip(new, vectors, strict=True))
        return len(new)

    def probe(self, indices: np.ndarray, seed: int) -> dict:
        """Logistic regression on the frozen encoder's mean-pooled embeddings, `C` tuned on folds."""
        if self._test_features is None:
            self._test_features = self._embed(self.task.test_texts)
        self.embed_training(indices)
        x, y = np.stack([self._features[int(i)] for i in indices]), self.task.train_y[indices]

        def run(train, valid, C):
            return probe_classifier(train, valid, C=C, seed=seed)

        C, _ = tune_on_folds(run, (x, y), PROBE_C, seed=seed)
        result = run((x, y), (self._test_features, self.task.test_y), C)
        self._probes[(np.asarray(indices).tobytes(), seed)] = result["model"]
        return {"accuracy": result["accuracy"], "model": result["model"], "C": C}

    def probe_head(self, indices: np.ndarray, seed: int):
        """The tuned probe of this subset and seed as an `nn.Linear` (fitted now if not yet)."""
        key = (np.asarray(indices).tobytes(), seed)
        if key not in self._probes:
            self.probe(indices, seed)
        return probe_head(self._probes[key])

    def _scratch_run(self, train: tuple, test: tuple, lr: float, seed: int) -> dict:
        epochs = epochs_for(len(train[1]), self.scratch_batch, self.scratch_steps, 3)
        config = TrainConfig(
            epochs=epochs,
            lr=lr,
            scheduler="onecycle",
            device=self.device,
            seed=seed,
            progress=False,
        )
        with cpu_threads(1):  # a tiny network: one thread beats two fighting over a small CPU
            result = bag_classifier(
                train,
                test,
                tokenizer=self.tokenizer,
                label_names=self.task.label_names,
                config=config,
                batch_size=self.scratch_batch,
                max_length=self.max_length,
            )
        return {key: result[key] for key in ("accuracy", "train_accuracy", "seconds")}

    def scratch(self, indices: np.ndarray, seed: int) -> dict:
        """A `BagOfEmbeddings` from random weights, at `scratch_lr` (see `tune_scratch`)."""
        return self._scratch_run(self.task.subset(indices), self.task.test, self.scratch_lr, seed)

    def tune_scratch(
        self, indices: np.ndarray, held_out: np.ndarray, lrs: Sequence[float], seed: int = 0
    ) -> dict[float, float]:
        """Pick `scratch_lr`: train on `indices`, score each lr on the training texts `held_out`."""
        scores = {
            lr: self._scratch_run(self.task.subset(indices), self.task.subset(held_out), lr, seed)[
                "accuracy"
            ]
            for lr in lrs
        }
        self.scratch_lr = max(scores, key=lambda lr: scores[lr])
        return scores


def plot_seed_scores(
    curve,
    per_class: int,
    order: Sequence[str],
    *,
    majority: float | None = None,
    ax=None,
    title: str | None = None,
):
    """Test accuracy of every method at one size, one line per seed (the pairs the effects use),
    the mean as a bar; returns (fig, ax)."""
    part = curve[curve["per_class"] == per_class]
    table = part.pivot_table(index="seed", columns="method", values="accuracy")[list(order)]
    fig, ax = axes(ax, (1.6 * len(order) + 3.0, 4.0))
    x = np.arange(len(order))
    ax.bar(x, table.mean().to_numpy(), color="#cfd8e3", width=0.6, label="mean over seeds")
    for seed, row in table.iterrows():
        ax.plot(x, row.to_numpy(), marker="o", alpha=0.7, label=f"seed {seed}")
    if majority is not None:
        ax.axhline(majority, color="grey", linestyle=":", label="majority class")
    low = min(float(np.nanmin(table.to_numpy())), majority or 1.0)
    ax.set(xticks=x, ylim=(max(0.0, low - 0.05), 1.0), ylabel="test accuracy")
    ax.set_xticklabels(list(order))
    ax.set_xlabel("method")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title(title or f"{per_class} labelled examples per class: every seed")
    return fig, ax


def plot_transfer_curve(curve, *, majority: float | None = None, title: str | None = None):
    """`experiments.plot_data_efficiency` with the majority-class line and the legend outside."""
    fig, ax = plot_data_efficiency(curve, chance=majority, title=title)
    handles, labels = ax.get_legend_handles_labels()
    labels = ["majority class" if label == "chance" else label for label in labels]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_ylabel("test accuracy (mean; band: min to max over seeds)")
    return fig, ax
