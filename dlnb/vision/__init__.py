"""Vision: MNIST, digits and CIFAR-10, pretrained backbones, transfer learning experiments."""

from __future__ import annotations

from dlnb.vision.backbones import (
    TransferNet,
    fetch_torchvision_weights,
    imagenet_categories,
    lite0_weights_path,
    load_backbone,
    load_weights,
)
from dlnb.vision.cifar import parse_cifar_batch
from dlnb.vision.datasets import (
    MNIST_MEAN,
    MNIST_STD,
    idx_bytes,
    mnist_augment,
    mnist_loaders,
    mnist_tensors,
    parse_idx,
)
from dlnb.vision.finetune import (
    GradualUnfreezing,
    discriminative_lr,
    extract_features,
    freeze,
    linear_probe,
    plot_top_k,
    stage_param_groups,
    top_k,
    trainable_stages,
    unfreeze,
)
from dlnb.vision.preprocess import Preprocess
from dlnb.vision.transfer import (
    METHODS,
    Recipe,
    Task,
    digit_augment,
    fine_tune,
    image_task,
    probe,
    recalibrate_batchnorm,
    scratch,
    transfer_methods,
)

__all__ = [
    "METHODS",
    "MNIST_MEAN",
    "MNIST_STD",
    "idx_bytes",
    "parse_idx",
    "mnist_tensors",
    "mnist_augment",
    "mnist_loaders",
    "parse_cifar_batch",
    "Preprocess",
    "TransferNet",
    "lite0_weights_path",
    "load_weights",
    "fetch_torchvision_weights",
    "load_backbone",
    "imagenet_categories",
    "freeze",
    "unfreeze",
    "trainable_stages",
    "GradualUnfreezing",
    "stage_param_groups",
    "discriminative_lr",
    "extract_features",
    "linear_probe",
    "top_k",
    "plot_top_k",
    "Task",
    "image_task",
    "digit_augment",
    "Recipe",
    "probe",
    "fine_tune",
    "recalibrate_batchnorm",
    "scratch",
    "transfer_methods",
]
