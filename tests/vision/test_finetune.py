"""dlnb.backbones and dlnb.vision: loading, preprocessing, freezing, probes, weights checks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from dlnb.data.registry import ChecksumError, RemoteFile, sha256_file
from dlnb.train.callbacks import Callback
from dlnb.train.loop import TrainConfig, fit
from dlnb.vision import backbones
from dlnb.vision import finetune as vision

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """scikit-learn's BLAS on one thread too: a thread pool fighting over a shared CPU is slow."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def lite0():
    """The pretrained EfficientNet-Lite0 (loaded once for the module; tests must not modify it)."""
    return vision.load_backbone("efficientnet_lite0")


def fresh(num_classes: int = 10) -> vision.TransferNet:
    model, _ = vision.load_backbone("efficientnet_lite0", pretrained=False, num_classes=num_classes)
    return model


# --- loading -------------------------------------------------------------------------------------


def test_lite0_matches_the_package_model_it_is_cut_from(lite0):
    from efficientnet_lite_pytorch import EfficientNet

    model, _ = lite0
    reference = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    reference.load_state_dict(torch.load(backbones.lite0_weights_path(), weights_only=True))
    x = torch.randn(2, 3, 64, 64)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert len(model.stages) == 9 and model.num_features == 1280 and model.head.out_features == 1000


@pytest.mark.slow
def test_pretrained_lite0_recognises_the_scikit_image_cat_and_coffee(lite0):
    from skimage import data as photos

    model, preprocess = lite0
    cat, coffee = vision.top_k(model, preprocess, [photos.chelsea(), photos.coffee()], k=5)
    assert {"tabby", "tiger cat", "Egyptian cat"} & {name for name, _ in cat}
    assert coffee[0][0] == "espresso"
    probs = [p for _, p in cat]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_scratch_model_has_the_same_architecture_and_different_weights(lite0):
    pretrained = lite0[0].state_dict()
    scratch = fresh(num_classes=1000).state_dict()
    assert {k: v.shape for k, v in scratch.items()} == {k: v.shape for k, v in pretrained.items()}
    key = "stages.0.0.weight"  # the stem convolution
    assert not torch.allclose(scratch[key], pretrained[key])


def test_num_classes_replaces_the_head_and_bn_momentum_is_set():
    model, _ = vision.load_backbone(num_classes=7, bn_momentum=0.2)
    assert model.head.out_features == 7 and model.head.in_features == 1280
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.2 for m in bns)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        vision.load_backbone("vgg11")


def test_imagenet_categories():
    names = vision.imagenet_categories()
    assert len(names) == 1000 and names[281] == "tabby" and names[967] == "espresso"


def test_top_k_refuses_a_model_without_the_imagenet_head(lite0):
    with pytest.raises(ValueError, match="1000-way"):
        vision.top_k(fresh(), lite0[1], np.zeros((32, 32, 3), np.uint8))


# --- weights files -------------------------------------------------------------------------------


def test_pinned_lite0_sha256_is_the_installed_file():
    assert sha256_file(backbones.lite0_weights_path()) == backbones.LITE0_SHA256


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_corrupt_weights_file_is_a_clear_error(tmp_path, damage):
    good = backbones.lite0_weights_path()
    bad = tmp_path / good.name
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: 1 << 20])
    else:
        shutil.copy(good, bad)
        blob = bytearray(bad.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        bad.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError) as info:
        vision.load_backbone(weights_path=bad)
    message = str(info.value)
    assert str(bad) in message and backbones.LITE0_SHA256 in message
    assert sha256_file(bad) in message and "reinstall" in message.lower()


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vision.load_backbone(weights_path=tmp_path / "nope.pth")


def test_torchvision_pins_agree_with_torchvision():
    from torchvision.models import get_weight

    for name, (enum_name, file) in backbones.TORCHVISION_WEIGHTS.items():
        url = get_weight(enum_name).url
        assert file.url == url and file.filename == url.rsplit("/", 1)[-1], name
        assert file.filename.split("-")[-1].removesuffix(".pth") == file.sha256[:8]


@pytest.mark.slow
def test_torchvision_weights_download_once_into_dlnb_data(
    tmp_data_dir, local_http_server, monkeypatch
):
    import torchvision

    original = torchvision.models.resnet18(weights=None).state_dict()
    served = local_http_server.root / "resnet18-test.pth"
    torch.save(original, served)
    file = RemoteFile(local_http_server.url(served.name), sha256_file(served), served.name)
    monkeypatch.setitem(
        backbones.TORCHVISION_WEIGHTS, "resnet18", ("ResNet18_Weights.IMAGENET1K_V1", file)
    )

    model, preprocess = vision.load_backbone("resnet18")
    torch.testing.assert_close(model.stages[0][0].weight, original["conv1.weight"])
    torch.testing.assert_close(model.head.weight, original["fc.weight"])
    assert (tmp_data_dir / "weights" / served.name).exists()
    assert preprocess == vision.Preprocess(
        224, 256, backbones.IMAGENET_MEAN, backbones.IMAGENET_STD
    )

    vision.load_backbone("resnet18")  # the second time from $DLNB_DATA, no request
    assert len(local_http_server.requests) == 1


def test_torchvision_download_with_a_wrong_checksum_keeps_nothing(
    tmp_data_dir, local_http_server, monkeypatch
):
    served = local_http_server.root / "resnet18-bad.pth"
    served.write_bytes(b"not the weights")
    file = RemoteFile(local_http_server.url(served.name), "0" * 64, served.name)
    monkeypatch.setitem(
        backbones.TORCHVISION_WEIGHTS, "resnet18", ("ResNet18_Weights.IMAGENET1K_V1", file)
    )
    with pytest.raises(ChecksumError, match="0" * 64):
        vision.load_backbone("resnet18")
    assert not any((tmp_data_dir / "weights").iterdir())


def test_torchvision_download_without_network_says_what_to_do(tmp_data_dir, monkeypatch):
    file = RemoteFile("http://127.0.0.1:9/resnet18-f37072fd.pth", "0" * 64, "resnet18-f37072fd.pth")
    monkeypatch.setitem(
        backbones.TORCHVISION_WEIGHTS, "resnet18", ("ResNet18_Weights.IMAGENET1K_V1", file)
    )
    with pytest.raises(ConnectionError, match="efficientnet_lite0"):
        vision.load_backbone("resnet18")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_b0"])
def test_torchvision_backbones_are_cut_into_stages_and_keep_their_forward(name):
    import torchvision

    model, preprocess = vision.load_backbone(name, pretrained=False, bn_momentum=0.1)
    reference = torchvision.models.get_model(name, weights=None)
    missing = reference.load_state_dict(
        {k: v for k, v in zip(reference.state_dict(), model.state_dict().values(), strict=True)}
    )
    assert not missing.missing_keys
    x = torch.randn(1, 3, 64, 64)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert preprocess.size == 224 and preprocess.resize in (232, 256)


# --- preprocessing -------------------------------------------------------------------------------


def test_preprocess_accepts_the_usual_image_forms():
    pre = vision.Preprocess(size=32, resize=36)
    rgb = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert pre(rgb).shape == (1, 3, 32, 32)
    assert pre([rgb, rgb[:40, :45]]).shape == (2, 3, 32, 32)
    assert pre(np.zeros((5, 28, 28), np.uint8)).shape == (5, 3, 32, 32)  # grey batch
    assert pre(np.zeros((5, 28, 28, 4), np.uint8)).shape == (5, 3, 32, 32)  # RGBA batch
    assert pre(torch.rand(4, 1, 40, 40)).shape == (4, 3, 32, 32)  # torch (N, C, H, W)
    grey = pre.denormalize(
        pre(np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8))
    )
    torch.testing.assert_close(grey[:, 0], grey[:, 1])
    torch.testing.assert_close(grey[:, 1], grey[:, 2])


def test_preprocess_normalises_with_the_backbones_statistics():
    _, lite = vision.load_backbone(pretrained=False)
    assert lite.mean == backbones.LITE_MEAN and lite.std == backbones.LITE_STD
    black, white = np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)
    out = lite.at(8, crop=False)([black, white])
    torch.testing.assert_close(out[0], torch.full((3, 8, 8), -127 / 128))
    torch.testing.assert_close(out[1], torch.full((3, 8, 8), 1.0))
    imagenet = vision.Preprocess(size=4, resize=4)
    mean_image = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    torch.testing.assert_close(imagenet(mean_image), torch.zeros(1, 3, 4, 4))
    torch.testing.assert_close(imagenet.denormalize(imagenet(mean_image)), mean_image)


def test_preprocess_resizes_the_shorter_side_then_centre_crops():
    image = np.zeros((100, 200), np.uint8)
    image[:, 50:150] = 255  # the centre square is white, the sides black
    crop_only = vision.Preprocess(size=100, resize=100, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.equal(
        crop_only(image), torch.ones(1, 3, 100, 100)
    )  # only the white centre is kept
    framed = np.zeros((64, 64), np.uint8)
    framed[4:-4, 4:-4] = 255  # a white square in a black frame
    pre = vision.Preprocess(size=32, resize=40, mean=(0, 0, 0), std=(1, 1, 1))
    assert pre(framed).min() > 0.99  # the frame is in the margin cut off by the crop
    assert pre.at(32, crop=False)(framed).min() < 0.1  # no margin: the frame stays
    assert pre.at(100).resize == 125 and pre.at(100, crop=False).resize == 100
    assert vision.Preprocess(224, 256).at(64).resize == 73


def test_preprocess_matches_torchvision_transforms():
    from torchvision.models import ResNet18_Weights

    image = torch.from_numpy(
        np.random.default_rng(1).integers(0, 256, (3, 300, 400), dtype=np.uint8)
    )
    expected = ResNet18_Weights.IMAGENET1K_V1.transforms()(image)
    ours = vision.Preprocess(224, 256)(image.unsqueeze(0))[0]
    assert ours.shape == expected.shape
    assert (ours - expected).abs().mean() < 0.01


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((2, 3, 4, 5, 6), np.uint8), ValueError, "Cannot read images"),
        (np.full((8, 8, 3), 2.0, np.float32), ValueError, r"\[0, 1\]"),
        (np.zeros((1, 8, 8, 2), np.uint8), ValueError, "channels"),
        (torch.zeros(2, 5, 8, 8), ValueError, "channels"),
        (np.zeros((8, 8), np.int64), TypeError, "uint8"),
        ([], ValueError, "empty"),
    ],
)
def test_preprocess_rejects_bad_input_clearly(bad, error, match):
    with pytest.raises(error, match=match):
        vision.Preprocess(size=8, resize=8)(bad)


def test_preprocess_checks_its_settings():
    with pytest.raises(ValueError, match="at least size"):
        vision.Preprocess(size=224, resize=200)


def test_transfernet_rejects_unpreprocessed_input():
    with pytest.raises(ValueError, match="Preprocess"):
        fresh()(torch.zeros(2, 1, 32, 32))


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


def test_per_class_subset_is_balanced_seeded_and_nested():
    labels = np.repeat(np.arange(4), 25)[np.random.default_rng(0).permutation(100)]
    small, large = (
        vision.per_class_subset(labels, 3, seed=1),
        vision.per_class_subset(labels, 10, seed=1),
    )
    assert np.bincount(labels[small]).tolist() == [3] * 4 and set(small) <= set(large)
    assert np.array_equal(small, vision.per_class_subset(labels, 3, seed=1))
    assert not np.array_equal(small, vision.per_class_subset(labels, 3, seed=2))
    assert len(vision.per_class_subset(labels, None)) == 100
    with pytest.raises(ValueError, match="fewer than 30"):
        vision.per_class_subset(labels, 30)
    with pytest.raises(ValueError, match="positive integer"):
        vision.per_class_subset(labels, "5")


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
