"""dlnb.vision.finetune: top-k predictions, freezing, gradual unfreezing, features and probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlnb.train.callbacks import Callback
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit
from dlnb.vision import finetune as vision
from tests.conftest import fresh

pytestmark = pytest.mark.usefixtures("single_thread", "one_blas_thread")


# --- top-k predictions ---------------------------------------------------------------------------


@pytest.mark.slow
def test_pretrained_lite0_recognises_the_scikit_image_cat_and_coffee(lite0):
    from skimage import data as photos

    model, preprocess = lite0
    cat, coffee = vision.top_k(model, preprocess, [photos.chelsea(), photos.coffee()], k=5)
    assert {"tabby", "tiger cat", "Egyptian cat"} & {name for name, _ in cat}
    assert coffee[0][0] == "espresso"
    probs = [p for _, p in cat]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_top_k_refuses_a_model_without_the_imagenet_head(lite0):
    with pytest.raises(ValueError, match="1000-way"):
        vision.top_k(fresh(), lite0[1], np.zeros((32, 32, 3), np.uint8))


# --- freezing ------------------------------------------------------------------------------------


def bn_layers(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_freeze_and_unfreeze_stages():
    model = fresh()
    vision.freeze(model)
    assert vision.trainable_stages(model) == [False] * 9
    assert all(p.requires_grad for p in model.head.parameters())
    vision.unfreeze(model, 2)
    assert vision.trainable_stages(model) == [False] * 7 + [True] * 2
    vision.freeze(model, 8)
    assert vision.trainable_stages(model) == [False] * 8 + [True]
    vision.unfreeze(model)
    assert all(vision.trainable_stages(model))
    with pytest.raises(TypeError, match="TransferNet"):
        vision.freeze(nn.Linear(2, 2))


def test_frozen_stages_keep_their_batchnorm_statistics_in_train_mode():
    model = fresh()
    vision.freeze(model, 5)
    model.train()
    frozen, free = bn_layers(model.stages[:5]), bn_layers(model.stages[5:])
    assert not any(m.training for m in frozen) and all(m.training for m in free)
    before = [m.running_mean.clone() for m in frozen + free]
    model(torch.randn(4, 3, 32, 32) * 3 + 1)
    after = [m.running_mean for m in frozen + free]
    assert all(torch.equal(b, a) for b, a in zip(before[: len(frozen)], after, strict=False))
    assert not torch.equal(before[-1], after[-1])
    model.bn_stats_frozen = True
    model.train()
    assert not any(m.training for m in bn_layers(model))


def test_a_step_on_a_frozen_backbone_changes_only_the_head():
    model = fresh()
    vision.freeze(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    nn.functional.cross_entropy(
        model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])
    ).backward()
    opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head.weight", "head.bias"}


def test_stage_param_groups_cover_every_parameter_once_with_decaying_rates():
    model = fresh()
    groups = vision.stage_param_groups(model, head_lr=1e-2, backbone_lr=1e-3, decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert groups[0]["name"] == "head" and groups[0]["lr"] == 1e-2
    assert [g["lr"] for g in groups[1:4]] == [1e-3, 5e-4, 2.5e-4]
    assert groups[1]["name"] == "stage8" and groups[-1]["name"] == "stage0"


class Watch(Callback):
    """Record which stages are trainable during each epoch and the optimizer's learning rates."""

    def __init__(self):
        self.trainable, self.lrs = [], None

    def on_batch_end(self, state):
        if state.batch == 1:
            self.trainable.append(sum(vision.trainable_stages(state.model)))
            self.lrs = [g["lr"] for g in state.optimizer.param_groups]


def tiny_loaders(n: int = 8, size: int = 32):
    from dlnb.data.loaders import make_loaders

    x = torch.randn(n, 3, size, size)
    y = torch.arange(n) % 2
    return make_loaders(x, y, batch_size=4, valid_fraction=0.0)


@pytest.mark.slow
def test_gradual_unfreezing_with_discriminative_learning_rates():
    model = fresh(num_classes=2)
    stem_before = model.stages[0][0].weight.clone()
    watch = Watch()
    config = TrainConfig(
        epochs=3,
        progress=False,
        param_groups=vision.discriminative_lr(head_lr=1e-2, backbone_lr=1e-3),
    )
    fit(model, tiny_loaders(), config, [vision.GradualUnfreezing(per_epoch=4), watch])
    assert watch.trainable == [0, 4, 8]
    assert watch.lrs[0] == 1e-2 and set(watch.lrs[1:]) == {1e-3}
    assert torch.equal(model.stages[0][0].weight, stem_before)  # the stem never unfroze
    assert not torch.equal(model.stages[8][0].weight, fresh(2).stages[8][0].weight)


def test_gradual_unfreezing_needs_every_parameter_in_the_optimizer():
    model = fresh(num_classes=2)
    vision.freeze(model)
    with pytest.raises(ValueError, match="param_groups"):
        fit(
            model,
            tiny_loaders(),
            TrainConfig(epochs=1, progress=False),
            [vision.GradualUnfreezing()],
        )


# --- features, probes, subsets -------------------------------------------------------------------


def test_extract_features_shape_mode_and_values(lite0):
    model, _ = lite0
    x = torch.randn(5, 3, 32, 32)
    model.train()
    feats = vision.extract_features(model, x, batch_size=2, device="cpu")
    assert feats.shape == (5, 1280) and model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, model.features(x))


def test_extract_features_reads_any_network_with_a_features_method():
    from dlnb.models import LeNet5
    from dlnb.vision.pretrain import lenet_headed

    lenet = LeNet5()
    x = torch.randn(3, 1, 28, 28)
    feats = vision.extract_features(lenet_headed(lenet), x, device="cpu")
    assert feats.shape == (3, 84)
    with pytest.raises(TypeError, match="features\\(x\\) method"):
        vision.extract_features(lenet, x)  # LeNet5.features is a layer: its maps are not pooled


def test_linear_probe_learns_separable_features_and_matches_sklearn():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 4
    y = np.repeat(np.arange(3), 30)
    f = torch.from_numpy(centres[y] + rng.normal(size=(90, 20))).float()
    head = vision.linear_probe(f, y, num_classes=4)
    assert head.out_features == 4 and head.in_features == 20
    pred = head(f).argmax(1).numpy()
    assert (pred == y).mean() == 1.0 and not (pred == 3).any()  # class 3 unseen: never predicted
    binary = vision.linear_probe(f[:60], y[:60])
    assert binary.out_features == 2 and (binary(f[:60]).argmax(1).numpy() == y[:60]).mean() == 1.0
    with pytest.raises(ValueError, match="two classes"):
        vision.linear_probe(f[:30], y[:30])


# --- GPU -----------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_features_on_cuda_match_the_cpu(lite0):
    model, preprocess = lite0
    x = preprocess.at(64)(np.random.default_rng(0).integers(0, 256, (4, 80, 80, 3), dtype=np.uint8))
    cpu = vision.extract_features(model, x, device="cpu")
    cuda = vision.extract_features(model, x, device="cuda")
    model.cpu()
    torch.testing.assert_close(cuda, cpu, rtol=1e-3, atol=1e-3)


def test_plot_top_k_draws_each_image_and_its_bars():
    images = {"a": np.zeros((8, 8, 3), np.uint8), "b": np.ones((8, 8, 3), np.uint8)}
    predictions = [[("x", 0.6), ("y", 0.3)], [("z", 0.9), ("w", 0.1)]]
    fig, axes = vision.plot_top_k(images, predictions)
    assert axes.shape == (2, 2) and axes[0, 1].get_title() == "b"
    labels = {t.get_position()[1]: t.get_text() for t in axes[1, 0].get_yticklabels()}
    assert labels == {1: "x", 0: "y"}  # the most probable class on top
    assert [p.get_width() for p in axes[1, 1].patches] == [0.9, 0.1]
