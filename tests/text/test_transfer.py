"""The fair baselines of notebook 05 on a tiny task, and the plots of the comparison."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from dlnb.text import tasks, transfer

pytestmark = pytest.mark.usefixtures("single_thread")
GOOD = ["what a lovely warm day", "lovely food and warm people", "warm lovely sunny", "lovely"]
BAD = ["cold grey miserable rain", "miserable cold service", "grey cold and miserable", "cold"]


@pytest.fixture
def tiny_task():
    train = GOOD * 3 + BAD * 3
    y = np.array([1] * 12 + [0] * 12)
    return tasks.TextTask(
        name="toy",
        label_names=("negative", "positive"),
        train_texts=[f"{t} {i}" for i, t in enumerate(train)],
        train_y=y,
        test_texts=["a lovely warm morning", "cold and grey again", "lovely people", "miserable"],
        test_y=np.array([1, 0, 1, 0]),
        test_confidence=np.full(4, np.nan),
    )


@pytest.fixture
def tiny_encoder(tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def test_every_baseline_scores_the_task_and_the_probe_embeds_each_text_once(
    tiny_task, tokenizer, tiny_encoder
):
    setup = transfer.Baselines(tiny_task, tokenizer, tiny_encoder, max_length=16, device="cpu")
    indices = np.arange(24)
    tfidf = setup.tfidf(indices, 0)
    assert tfidf["accuracy"] == 1.0 and tfidf["C"] in transfer.TFIDF_C and "seconds" not in tfidf
    probe = setup.probe(indices, 0)
    assert 0.0 <= probe["accuracy"] <= 1.0 and setup.embed_training(indices) == 0  # cached
    head = setup.probe_head(indices, 0)
    assert tuple(head.weight.shape) == (2, 16)
    scratch = setup.scratch(indices, 0)
    assert scratch["accuracy"] == 1.0 and scratch["train_accuracy"] == 1.0


def test_tune_scratch_keeps_the_learning_rate_that_scores_best_on_held_out_texts(
    tiny_task, tokenizer, tiny_encoder
):
    setup = transfer.Baselines(tiny_task, tokenizer, tiny_encoder, max_length=16, device="cpu")
    scores = setup.tune_scratch(np.arange(0, 24, 2), np.arange(1, 24, 2), (1e-5, 3e-2))
    assert set(scores) == {1e-5, 3e-2} and scores[3e-2] > scores[1e-5]
    assert setup.scratch_lr == 3e-2


def _curve():
    rows = []
    for size, shift in ((16, 0.0), (64, 0.05)):
        for method, base in (("TF-IDF", 0.62), ("fine-tuned encoder", 0.72)):
            rows += [
                {"method": method, "per_class": size, "seed": s, "accuracy": base + shift + s / 100}
                for s in range(3)
            ]
    return pd.DataFrame(rows)


def test_seed_plot_draws_one_line_per_seed_and_keeps_the_legend_off_the_axes():
    fig, ax = transfer.plot_seed_scores(
        _curve(), 16, ["TF-IDF", "fine-tuned encoder"], majority=0.5
    )
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["seed 0", "seed 1", "seed 2", "majority class"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["TF-IDF", "fine-tuned encoder"]
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    assert ax.get_ylabel() == "test accuracy" and ax.get_xlabel() == "method"


def test_curve_plot_names_the_majority_line_and_moves_the_legend_outside():
    fig, ax = transfer.plot_transfer_curve(_curve(), majority=0.5, title="toy")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "majority class" in texts and "chance" not in texts
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    assert ax.get_xlabel() == "labelled examples per class"
