"""Reusing a pretrained backbone: freezing, gradual unfreezing, per-stage learning rates, linear probes.

The backbones themselves (loading, ImageNet class names) live in `dlnb.vision.backbones` and
their preprocessing in `dlnb.vision.preprocess`; both are re-exported here, so a notebook needs
only `from dlnb import vision`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from dlnb.models import eval_mode
from dlnb.runtime import pick_device
from dlnb.train.callbacks import Callback
from dlnb.vision.backbones import (
    BACKBONES,
    TransferNet,
    imagenet_categories,
    load_backbone,
    load_weights,
)
from dlnb.vision.preprocess import Preprocess

__all__ = [
    "BACKBONES",
    "GradualUnfreezing",
    "Preprocess",
    "TransferNet",
    "discriminative_lr",
    "extract_features",
    "freeze",
    "imagenet_categories",
    "linear_probe",
    "load_backbone",
    "load_weights",
    "plot_top_k",
    "stage_param_groups",
    "top_k",
    "trainable_stages",
    "unfreeze",
]


# --- freezing ------------------------------------------------------------------------------------


def _check(model: nn.Module) -> TransferNet:
    if not isinstance(model, TransferNet):
        raise TypeError(
            f"Expected a TransferNet (from dlnb.vision.finetune.load_backbone), got {type(model).__name__}."
        )
    return model


def _set_stages(model: TransferNet, indices, trainable: bool) -> None:
    for i in indices:
        for p in model.stages[i].parameters():
            p.requires_grad_(trainable)
    model.train(model.training)  # frozen stages go to eval mode, unfrozen ones follow the model


def freeze(model: TransferNet, stages: int | None = None) -> TransferNet:
    """Freeze the first `stages` stages (all by default); the head stays trainable.

    Frozen stages get no gradients and keep their BatchNorm statistics (they stay in eval mode).
    """
    n = len(_check(model).stages) if stages is None else stages
    _set_stages(model, range(min(n, len(model.stages))), trainable=False)
    return model


def unfreeze(model: TransferNet, stages: int | None = None) -> TransferNet:
    """Make the last `stages` stages trainable (all by default), counting from the head down."""
    total = len(_check(model).stages)
    n = total if stages is None else min(stages, total)
    _set_stages(model, range(total - n, total), trainable=True)
    return model


def trainable_stages(model: TransferNet) -> list[bool]:
    """For each stage, from the input up: does it have trainable parameters?"""
    return [any(p.requires_grad for p in s.parameters()) for s in _check(model).stages]


class GradualUnfreezing(Callback):
    """ULMFiT-style: epoch 1 trains the head only, then each epoch unfreezes `per_epoch` more stages.

    Use it with `TrainConfig(param_groups=...)`: the optimizer must hold the frozen parameters too
    (`stage_param_groups` includes them), so they start learning as soon as they are unfrozen.
    """

    def __init__(self, per_epoch: int = 2):
        if per_epoch < 1:
            raise ValueError(f"per_epoch must be at least 1, got {per_epoch}.")
        self.per_epoch = per_epoch

    def on_fit_start(self, state) -> None:
        model = _check(state.model)
        held = {id(p) for g in state.optimizer.param_groups for p in g["params"]}
        if any(id(p) not in held for p in model.parameters()):
            raise ValueError(
                "GradualUnfreezing needs every parameter in the optimizer, frozen ones included. "
                "Pass TrainConfig(param_groups=dlnb.vision.finetune.discriminative_lr(...))."
            )

    def on_epoch_start(self, state) -> None:
        model = _check(state.model)
        freeze(model)
        unfreeze(model, (state.epoch - 1) * self.per_epoch)


# --- learning rates per stage --------------------------------------------------------------------


def stage_param_groups(
    model: TransferNet, head_lr: float, backbone_lr: float, decay: float = 1.0
) -> list[dict]:
    """Optimizer groups: the head at `head_lr`, the top stage at `backbone_lr`, each stage below
    `decay` times the one above it. Frozen parameters are included (for gradual unfreezing)."""
    groups = [{"params": list(_check(model).head.parameters()), "lr": head_lr, "name": "head"}]
    lr = backbone_lr
    for i in reversed(range(len(model.stages))):
        params = list(model.stages[i].parameters())
        if params:
            groups.append({"params": params, "lr": lr, "name": f"stage{i}"})
        lr *= decay
    return groups


def discriminative_lr(
    head_lr: float, backbone_lr: float, decay: float = 1.0
) -> Callable[[nn.Module], list[dict]]:
    """A `TrainConfig.param_groups` callable: a smaller learning rate for the pretrained stages."""

    def groups(model: nn.Module) -> list[dict]:
        return stage_param_groups(_check(model), head_lr, backbone_lr, decay)

    return groups


# --- features and linear probes ------------------------------------------------------------------


@torch.no_grad()
def extract_features(
    model: nn.Module, x: torch.Tensor, batch_size: int = 64, device: str | torch.device = "auto"
) -> torch.Tensor:
    """`model.features` of preprocessed images `x` -> (N, F), on the CPU: a `TransferNet`'s pooled
    backbone features, or those of any network with a `features` method (a `Headed` network).

    Batches of 64 keep a CPU's caches warm: EfficientNet-Lite0 reads 48 px images about twice as
    fast as in batches of 256, with the same features."""
    features = getattr(model, "features", None)
    if not callable(features) or isinstance(features, nn.Module):
        raise TypeError(
            f"extract_features needs a network with a features(x) method (a TransferNet or a "
            f"dlnb.vision.Headed), got {type(model).__name__}."
        )
    device = pick_device(device)
    with eval_mode(model.to(device)):
        out = [
            features(x[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out)


def linear_probe(
    features: torch.Tensor,
    labels,
    num_classes: int | None = None,
    C: float = 1.0,
    max_iter: int = 1000,
) -> nn.Linear:
    """Fit a multinomial logistic regression (L-BFGS, L2 penalty 1/C) on frozen features.

    Returns it as an `nn.Linear` (it can become a TransferNet's head).
    """
    f = features.double().numpy()
    y = np.asarray(labels)
    if len(f) != len(y):
        raise ValueError(f"Got {len(f)} feature rows but {len(y)} labels.")
    if len(np.unique(y)) < 2:
        raise ValueError("A linear probe needs examples of at least two classes.")
    clf = LogisticRegression(C=C, max_iter=max_iter).fit(f, y)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # sklearn keeps one row for two classes: logit(1) - logit(0)
        coef, intercept = np.vstack([0 * coef, coef]), np.concatenate([[0.0], intercept])
    classes = int(num_classes or y.max() + 1)
    weight = np.zeros((classes, f.shape[1]))
    bias = np.full(classes, -1e4)  # classes absent from training are never predicted
    weight[clf.classes_], bias[clf.classes_] = coef, intercept
    head = nn.Linear(f.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return head


# --- ImageNet predictions ------------------------------------------------------------------------


@torch.no_grad()
def top_k(
    model: TransferNet,
    preprocess: Preprocess,
    images,
    k: int = 5,
    device: str | torch.device = "auto",
) -> list[list[tuple[str, float]]]:
    """The `k` most probable ImageNet classes (name, probability) of each image."""
    if _check(model).head.out_features != 1000:
        raise ValueError(
            "top_k names ImageNet classes: use a model with its pretrained 1000-way head."
        )
    device = pick_device(device)
    names = imagenet_categories()
    with eval_mode(model.to(device)):
        probs = model(preprocess(images).to(device)).float().softmax(dim=1).cpu()
    top = probs.topk(k, dim=1)
    return [
        [(names[i], float(p)) for p, i in zip(ps, ix, strict=True)]
        for ps, ix in zip(top.values, top.indices, strict=True)
    ]


def plot_top_k(images: dict, predictions: list[list[tuple[str, float]]]):
    """Each image (a dict title -> image) above a bar chart of its top-k classes; (fig, axes)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2,
        len(images),
        figsize=(3.2 * len(images), 5.5),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2]},
    )
    for col, ((title, image), top) in enumerate(zip(images.items(), predictions, strict=True)):
        axes[0, col].imshow(image)
        axes[0, col].set_title(title)
        axes[0, col].axis("off")
        names, probs = zip(*top, strict=True)
        rows = range(len(top))[::-1]
        axes[1, col].barh(rows, probs)
        axes[1, col].set_yticks(rows, [n[:18] for n in names], fontsize=8)
        axes[1, col].set_xlim(0, 1)
        axes[1, col].set_xlabel("probability")
    fig.tight_layout()
    return fig, axes
