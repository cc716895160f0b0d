import copy
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders, make_loaders
from dlnb.models import MLP, LeNet5
from dlnb.train import loop
from dlnb.train.callbacks import Callback
from dlnb.train.checkpoint import load_checkpoint
from dlnb.train.config import NonFiniteLossError, TrainConfig
from dlnb.train.loop import evaluate, fit, predict
from tests.train.helpers import assert_same_weights, failing_save, leftovers, toy_data

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = Path(__file__).resolve().parents[2]
CPU = {"device": "cpu", "progress": False}


def blobs(n: int = 640, classes: int = 4, dim: int = 8, seed: int = 0):
    """Gaussian blobs around well separated centres: a problem a small MLP solves."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + torch.randn(n, dim, generator=g), y


@pytest.fixture
def loaders():
    x, y = blobs()
    return make_loaders(
        x[:512], y[:512], x[512:], y[512:], batch_size=32, valid_fraction=0.25, seed=0
    )


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(8, hidden=(32,), out_features=4)


# --- learning ------------------------------------------------------------------------------------


def test_fit_learns_a_separable_problem(loaders):
    model = small_model()
    before = evaluate(model, loaders.test)
    history = fit(model, loaders, TrainConfig(epochs=5, lr=1e-2, **CPU))
    after = evaluate(model, loaders.test)
    assert after["accuracy"] >= 0.95  # chance is 0.25
    assert after["loss"] < before["loss"] / 4
    assert history.last("valid_accuracy") >= 0.95


def test_history_records_each_epoch_and_plots(loaders):
    history = fit(small_model(), loaders, TrainConfig(epochs=3, lr=1e-2, scheduler="cosine", **CPU))
    assert [r["epoch"] for r in history.records] == [1, 2, 3]
    assert set(history.records[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_accuracy",
        "lr",
        "seconds",
    }
    assert history.records[-1]["lr"] < history.records[0]["lr"]  # the cosine schedule decays
    assert all(r["seconds"] > 0 for r in history.records)
    frame = history.to_frame()
    assert list(frame.index) == [1, 2, 3] and "valid_loss" in frame
    fig, axes = history.plot()
    assert [len(ax.lines) for ax in axes] == [2, 2]  # train and valid, for loss and accuracy


def test_same_seed_same_weights(loaders):
    config = TrainConfig(epochs=2, lr=1e-2, seed=5, **CPU)
    a, b = small_model(), small_model()
    fit(a, loaders, config)
    fit(b, loaders, config)
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_regression_with_mse_learns():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 5, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0]) + 0.01 * torch.randn(512, generator=g)
    data = make_loaders(x, y, batch_size=32, valid_fraction=0.25, seed=0)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    history = fit(model, data, TrainConfig(epochs=20, lr=5e-2, loss="mse", **CPU))
    metrics = evaluate(model, data.valid, TrainConfig(loss="mse", **CPU))
    assert metrics["rmse"] < 0.1 * float(y.std())
    assert metrics["rmse"] == pytest.approx(math.sqrt(metrics["loss"]))
    assert "valid_rmse" in history.records[-1] and "train_accuracy" not in history.records[-1]


def test_binary_classification_with_bce_learns():
    x, y = blobs(classes=2)
    data = make_loaders(x, y.float(), batch_size=32, valid_fraction=0.25, seed=0)
    torch.manual_seed(0)
    model = MLP(8, hidden=(16,), out_features=1)
    fit(model, data, TrainConfig(epochs=4, lr=1e-2, loss="bce", **CPU))
    assert (
        evaluate(model, data.valid, TrainConfig(loss="bce", **CPU))["accuracy"] >= 0.95
    )  # chance is about 0.5


class DictModel(nn.Module):
    """Takes keyword inputs and returns an object with `.logits`, like a Hugging Face model."""

    def __init__(self):
        super().__init__()
        self.net = MLP(8, hidden=(32,), out_features=4)

    def forward(self, features, scale):
        return SimpleNamespace(logits=self.net(features * scale))


class PairModel(nn.Module):
    """Takes two positional inputs."""

    def __init__(self):
        super().__init__()
        self.net = MLP(8, hidden=(32,), out_features=4)

    def forward(self, a, b):
        return self.net(a + b)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y, as_dict):
        self.x, self.y, self.as_dict = x, y, as_dict

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.as_dict:
            return {"features": self.x[i], "scale": torch.ones(1)}, self.y[i]
        return (self.x[i] / 2, self.x[i] / 2), self.y[i]


@pytest.mark.parametrize("as_dict", [True, False])
def test_dict_and_tuple_inputs(as_dict):
    from torch.utils.data import DataLoader

    x, y = blobs(n=512)
    train = DataLoader(Pairs(x[:384], y[:384], as_dict), batch_size=32, shuffle=True)
    valid = DataLoader(Pairs(x[384:], y[384:], as_dict), batch_size=64)
    torch.manual_seed(0)
    model = DictModel() if as_dict else PairModel()
    history = fit(model, SimpleNamespace(train=train), TrainConfig(epochs=4, lr=1e-2, **CPU))
    assert "valid_loss" not in history.records[-1]  # no .valid: no validation
    assert evaluate(model, valid)["accuracy"] >= 0.95
    logits, targets = predict(model, valid)
    assert logits.shape == (128, 4) and np.array_equal(targets, y[384:].numpy())


# --- evaluate and predict ------------------------------------------------------------------------


def test_predict_and_evaluate_agree(loaders):
    model = small_model()
    fit(model, loaders, TrainConfig(epochs=1, lr=1e-2, **CPU))
    model.train()
    logits, targets = predict(model, loaders.test)
    assert model.training  # the mode is restored
    assert logits.shape == (128, 4) and logits.dtype == np.float32
    assert np.array_equal(targets, blobs()[1][512:].numpy())  # the fixture's test split
    metrics = evaluate(model, loaders.test)
    assert metrics["accuracy"] == pytest.approx((logits.argmax(1) == targets).mean())
    expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets)).item()
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    assert evaluate(model, loaders.test, TrainConfig(**CPU)) == pytest.approx(metrics)


def test_evaluate_of_nothing_is_an_error():
    empty = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(0, 8), torch.zeros(0).long())
    )
    with pytest.raises(ValueError, match="empty loader"):
        evaluate(small_model(), empty)


def test_evaluate_runs_on_the_device_given(loaders, monkeypatch):
    model = small_model()
    metrics = evaluate(model, loaders.test)
    monkeypatch.setattr(loop, "pick_device", lambda device: pytest.fail("resolved again"))
    cpu = torch.device("cpu")
    assert evaluate(model, loaders.test, device=cpu) == pytest.approx(metrics)
    assert evaluate(model, loaders.test, TrainConfig(**CPU), device=cpu) == pytest.approx(metrics)


# --- the device ----------------------------------------------------------------------------------


def test_fit_trains_on_the_device_given_without_resolving_it(loaders, monkeypatch):
    monkeypatch.setattr(loop, "pick_device", lambda device: pytest.fail("resolved again"))
    model = small_model()
    history = fit(model, loaders, TrainConfig(epochs=1, progress=False), device=torch.device("cpu"))
    assert len(history) == 1 and next(model.parameters()).device.type == "cpu"


# --- accumulation, memory format, CUDA ----------------------------------------------------------


def _accum_run(batch_size, grad_accum, n=60):
    x, y, _, _ = toy_data(n)
    torch.manual_seed(1)
    model = MLP(8, hidden=(16,), out_features=3)
    loaders = Loaders(DataLoader(TensorDataset(x, y), batch_size=batch_size))
    config = TrainConfig(
        epochs=2, optimizer="sgd", lr=0.1, grad_accum=grad_accum, device="cpu", progress=False
    )
    history = fit(model, loaders, config)
    return model.state_dict(), history


def test_accumulating_k_batches_matches_one_k_times_larger_batch():
    # 60 examples: micro-batches of 4 make groups of 4, 4, 4 and a last, shorter group of 3,
    # which must match the last big batch of 12.
    accumulated, h_acc = _accum_run(batch_size=4, grad_accum=4)
    big, h_big = _accum_run(batch_size=16, grad_accum=1)
    assert_same_weights(accumulated, big, atol=1e-6, rtol=1e-5)
    assert h_acc.last("train_loss") == pytest.approx(h_big.last("train_loss"), rel=1e-5)
    untrained = MLP(8, hidden=(16,), out_features=3).state_dict()
    assert not torch.allclose(untrained["net.1.weight"], big["net.1.weight"])


class Interrupt(Callback):
    """Raise KeyboardInterrupt in the middle of epoch `epoch`, like a killed job."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, state):
        if state.epoch == self.epoch and state.batch == 2:
            raise KeyboardInterrupt


def _resume_loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    return make_loaders(x, y, batch_size=16, valid_fraction=0.25, seed=0, device="cpu", translate=2)


def test_an_interrupted_run_on_the_gpu_loader_resumes_to_the_same_result(tmp_path):
    # The killed-run test below resumes a DataLoader run; the resident loader must replay the
    # same shuffles and augmentations too (fit tells it the epoch). DDP: tests/train/test_distributed.py.
    config = TrainConfig(
        epochs=3,
        device="cpu",
        progress=False,
        scheduler="onecycle",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    torch.manual_seed(0)
    reference = LeNet5(dropout=0.3)  # dropout and shuffling both draw random numbers
    initial = copy.deepcopy(reference.state_dict())
    uninterrupted = fit(
        reference, _resume_loaders(), TrainConfig(**{**config.to_dict(), "checkpoint_dir": None})
    )

    model = LeNet5(dropout=0.3)
    model.load_state_dict(initial)
    with pytest.raises(KeyboardInterrupt):
        fit(model, _resume_loaders(), config, [Interrupt(epoch=3)])
    restarted = LeNet5(dropout=0.3)  # a fresh process: new model, weights from the checkpoint
    resumed = fit(restarted, _resume_loaders(), config)

    assert_same_weights(restarted.state_dict(), reference.state_dict())
    assert resumed.records[-1]["valid_loss"] == uninterrupted.records[-1]["valid_loss"]
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3]


def test_channels_last_trains_a_cnn_on_the_cpu():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (64,), generator=g)
    x = torch.randn(64, 1, 28, 28, generator=g) + y.view(-1, 1, 1, 1)  # class 1 is brighter
    torch.manual_seed(0)
    model = LeNet5(num_classes=2)
    history = fit(
        model,
        make_loaders(x, y, batch_size=16, valid_fraction=0.0),
        TrainConfig(epochs=3, lr=3e-3, channels_last=True, device="cpu", progress=False),
    )
    assert history.records[-1]["train_loss"] < 0.5 * history.records[0]["train_loss"]
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
def test_fit_on_cuda_with_amp_compile_channels_last_and_the_gpu_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1, 28, 28, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    loaders = make_loaders(x, y, batch_size=64, device="cuda", translate=1)
    model = LeNet5(num_classes=2)
    history = fit(
        model,
        loaders,
        TrainConfig(epochs=3, amp="auto", compile=True, channels_last=True, progress=False),
    )
    assert history.last("valid_accuracy") > 0.7


# --- bad input -----------------------------------------------------------------------------------


def test_bad_loaders_and_batches_are_clear_errors(loaders):
    with pytest.raises(TypeError, match="fit needs loaders with a .train"):
        fit(small_model(), [1, 2, 3], TrainConfig(**CPU))
    triples = SimpleNamespace(train=[(torch.zeros(4, 8), torch.zeros(4).long(), torch.zeros(4))])
    with pytest.raises(TypeError, match="A batch must be a pair"):
        fit(small_model(), triples, TrainConfig(epochs=1, **CPU))
    wrong_targets = SimpleNamespace(train=[(torch.zeros(4, 8), torch.zeros(4, 4).long())])
    with pytest.raises(ValueError, match="cross_entropy needs logits"):
        fit(small_model(), wrong_targets, TrainConfig(epochs=1, **CPU))


class Poisoned:
    """Clean batches, except one batch of one epoch whose input or target is `value`."""

    def __init__(self, batches, epoch, batch, value, where):
        self.batches, self.bad, self.value, self.where = batches, (epoch, batch), value, where
        self.epoch = 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.epoch += 1
        for i, (x, y) in enumerate(self.batches, start=1):
            if (self.epoch, i) == self.bad:
                x, y = x.clone(), y.clone()
                (x if self.where == "x" else y)[0] = self.value
            yield x, y


@pytest.mark.parametrize(
    "value, loss, where, shown",
    [
        (math.nan, "cross_entropy", "x", "nan"),
        (math.inf, "mse", "y", "inf"),
    ],
)
def test_a_non_finite_loss_stops_naming_epoch_and_batch(value, loss, where, shown):
    x, y = blobs(n=160)
    target = y if loss == "cross_entropy" else y.float()
    batches = [(x[i : i + 32], target[i : i + 32]) for i in range(0, 160, 32)]
    model = small_model() if loss == "cross_entropy" else nn.Linear(8, 1)
    train = Poisoned(batches, epoch=2, batch=3, value=value, where=where)
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, SimpleNamespace(train=train), TrainConfig(epochs=3, loss=loss, **CPU))
    assert f"became {shown} at epoch 2, batch 3" in str(err.value)
    assert "Lower the learning rate" in str(err.value)


# --- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_load_with_weights_only(loaders, tmp_path):
    model = small_model()
    fit(model, loaders, TrainConfig(epochs=2, lr=1e-2, checkpoint_dir=str(tmp_path), **CPU))
    assert leftovers(tmp_path) == ["last.pt"]
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert all(torch.equal(ckpt["model"][k], v) for k, v in model.state_dict().items())
    assert load_checkpoint(tmp_path / "last.pt")["step"] == ckpt["step"] > 0


def test_fit_writes_no_partial_checkpoint_when_saving_fails(loaders, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        fit(small_model(), loaders, TrainConfig(epochs=1, checkpoint_dir=str(tmp_path), **CPU))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_checkpoint_is_a_clear_error(loaders, tmp_path, damage):
    path = tmp_path / "last.pt"
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        fit(small_model(), loaders, TrainConfig(epochs=1, checkpoint_dir=str(tmp_path), **CPU))
        path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(RuntimeError) as err:
        fit(small_model(), loaders, TrainConfig(epochs=2, checkpoint_dir=str(tmp_path), **CPU))
    message = str(err.value)
    assert f"Checkpoint {path} could not be read" in message
    assert "corrupt" in message and "Delete it to start the run over" in message


class EpochsRun(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_start(self, state):
        self.epochs.append(state.epoch)


def test_a_finished_run_is_not_trained_again_and_resume_false_starts_over(loaders, tmp_path):
    config = TrainConfig(epochs=2, lr=1e-2, checkpoint_dir=str(tmp_path), **CPU)
    first = small_model()
    fit(first, loaders, config)
    again, ran = small_model(seed=1), EpochsRun()
    history = fit(again, loaders, config, callbacks=[ran])
    assert ran.epochs == [] and len(history) == 2
    assert all(
        torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters(), strict=True)
    )
    fresh, ran = small_model(), EpochsRun()
    fit(
        fresh,
        loaders,
        TrainConfig(epochs=2, lr=1e-2, checkpoint_dir=str(tmp_path), resume=False, **CPU),
        callbacks=[ran],
    )
    assert ran.epochs == [1, 2]


# --- resume after an interruption ------------------------------------------------------------------

TRAIN_SCRIPT = textwrap.dedent('''
    """Train a small model with checkpoints; optionally hang mid-epoch so the test can kill us."""
    import sys, time
    from pathlib import Path

    import torch

    from dlnb.data.loaders import make_loaders
    from dlnb.models import MLP
    from dlnb.train.callbacks import Callback
    from dlnb.train.config import TrainConfig
    from dlnb.train.loop import fit

    torch.set_num_threads(1)


    class Hang(Callback):
        def __init__(self, epoch, marker):
            self.epoch, self.marker = epoch, marker

        def on_batch_end(self, state):
            if state.epoch == self.epoch and state.batch == 3:
                Path(self.marker).touch()
                time.sleep(300)


    class EpochsRun(Callback):
        def __init__(self):
            self.epochs = []

        def on_epoch_start(self, state):
            self.epochs.append(state.epoch)


    def run(checkpoint_dir, out, hang_epoch=0):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 10, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        loaders = make_loaders(x, y, batch_size=32, valid_fraction=0.25, seed=0)
        torch.manual_seed(123)
        model = MLP(10, hidden=(32,), out_features=3, dropout=0.2)
        config = TrainConfig(epochs=4, lr=3e-3, scheduler="onecycle", seed=7, deterministic=True,
                             checkpoint_dir=checkpoint_dir, device="cpu", progress=False)
        ran = EpochsRun()
        history = fit(model, loaders, config, callbacks=[Hang(hang_epoch, out + ".hanging"), ran])
        torch.save({"model": model.state_dict(), "epochs_run": ran.epochs,
                    "train_loss": history["train_loss"], "valid_loss": history["valid_loss"]}, out)


    args = sys.argv[1:]
    for i in range(0, len(args), 3):
        run(args[i], args[i + 1], int(args[i + 2]))
''')


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    ref, run_dir = tmp_path / "reference.pt", tmp_path / "run"
    interrupted, resumed = tmp_path / "interrupted.pt", tmp_path / "resumed.pt"

    # An uninterrupted run, then the same run hanging in epoch 3 until it is killed.
    log = tmp_path / "interrupted.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(tmp_path / "ref_run"),
                str(ref),
                "0",
                str(run_dir),
                str(interrupted),
                "3",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        marker = Path(str(interrupted) + ".hanging")
        deadline = time.monotonic() + 180
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"the training script never reached epoch 3:\n{log.read_text()}")
            time.sleep(0.1)
        proc.kill()  # SIGKILL: no handler, no cleanup, like a crash or a pre-empted job
        proc.wait()
    assert not interrupted.exists()
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 2  # epoch 3 was lost mid-way
    assert [p.name for p in run_dir.iterdir()] == ["last.pt"]

    # A new process resumes from the checkpoint and finishes the run.
    done = subprocess.run(
        [sys.executable, str(script), str(run_dir), str(resumed), "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    a, b = torch.load(ref, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["epochs_run"] == [1, 2, 3, 4] and b["epochs_run"] == [3, 4]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:  # bit-for-bit identical, not merely close
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["train_loss"] == b["train_loss"] and a["valid_loss"] == b["valid_loss"]


# --- issue 15: explosions, NaN validation, resumes of another run, orphans -------------------------


def test_a_loss_that_explodes_while_finite_stops_naming_the_lr(loaders):
    from dlnb.train.step import LossExplodedError

    with pytest.raises(LossExplodedError) as err:
        fit(small_model(), loaders, TrainConfig(epochs=3, lr=1e6, **CPU))
    message = str(err.value)
    assert "The training loss exploded" in message and "lr=1e+06 is too high" in message
    assert "grad_clip" in message
    history = fit(small_model(), loaders, TrainConfig(epochs=3, lr=1e-2, **CPU))
    assert history.last("valid_accuracy") > 0.9  # a sane lr is not stopped


def test_a_nan_validation_loss_is_reported(loaders):
    x, y = next(iter(loaders.valid))
    x = x.clone()
    x[0, 0] = math.nan
    poisoned = SimpleNamespace(train=loaders.train, valid=[(x, y)])
    with pytest.raises(NonFiniteLossError, match="validation loss became nan at epoch 1"):
        fit(small_model(), poisoned, TrainConfig(epochs=2, **CPU))


def test_resuming_another_run_is_refused_and_orphans_are_removed(loaders, tmp_path):
    from dlnb.train.checkpoint import ResumeMismatchError

    config = TrainConfig(epochs=2, lr=1e-3, checkpoint_dir=str(tmp_path), **CPU)
    fit(small_model(), loaders, config)
    (tmp_path / "tmpkilled.pt.tmp").write_bytes(b"half a checkpoint")  # a kill mid-write
    with pytest.raises(ResumeMismatchError, match="lr 0.001 -> 0.5"):
        fit(small_model(), loaders, TrainConfig(**{**config.to_dict(), "lr": 0.5}))
    assert leftovers(tmp_path) == ["last.pt"]
    with pytest.raises(ResumeMismatchError, match="epochs 2 -> 4; scheduler None -> 'onecycle'"):
        fit(
            small_model(),
            loaders,
            TrainConfig(**{**config.to_dict(), "epochs": 4, "scheduler": "onecycle"}),
        )
    x, y = blobs(seed=1)
    other = make_loaders(x[:512], y[:512], batch_size=32, valid_fraction=0.25, seed=0)
    with pytest.raises(ResumeMismatchError, match="train data"):
        fit(small_model(), other, config)
    ran = EpochsRun()
    fit(small_model(), loaders, TrainConfig(**{**config.to_dict(), "progress": True}), [ran])
    assert ran.epochs == []  # the same run, shown differently: resumed (here: already finished)
    fit(small_model(), loaders, TrainConfig(**{**config.to_dict(), "epochs": 3}), [ran])
    assert ran.epochs == [3]  # without a schedule over the whole run, a run may be extended


# --- issue 17: class weights, optimizer state only while training needs it ----------------------


def _imbalanced(n: int = 1200, seed: int = 0):
    """Two overlapping classes, 10 % of them the minority (class 1)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.1).long()
    return torch.randn(n, 2, generator=g) + 1.2 * y[:, None], y


def _minority_recall(class_weight) -> float:
    x, y = _imbalanced()
    data = make_loaders(x[:800], y[:800], x[800:], y[800:], batch_size=64, stratify=True)
    torch.manual_seed(0)
    model = MLP(2, hidden=(16,), out_features=2)
    fit(model, data, TrainConfig(epochs=6, lr=1e-2, class_weight=class_weight, **CPU))
    logits, target = predict(model, data.test)
    return float((logits.argmax(1)[target == 1] == 1).mean())


def test_balanced_class_weights_raise_the_recall_of_a_rare_class():
    plain, balanced = _minority_recall(None), _minority_recall("balanced")
    assert balanced > plain + 0.3, (plain, balanced)
    assert _minority_recall([1.0, 9.0]) > plain + 0.3


def test_class_weights_need_a_class_per_weight_and_a_classification_loss(loaders):
    with pytest.raises(ValueError, match="one positive weight per class"):
        fit(small_model(), loaders, TrainConfig(epochs=1, class_weight=[1.0, 2.0], **CPU))
    with pytest.raises(ValueError, match="classification loss"):
        TrainConfig(loss="mse", class_weight="balanced")
    with pytest.raises(ValueError, match="'balanced' or a list"):
        TrainConfig(class_weight="inverse")


def test_the_final_checkpoint_drops_the_optimizer_unless_asked_and_can_still_be_extended(
    loaders, tmp_path, capsys
):
    config = TrainConfig(epochs=2, lr=1e-2, checkpoint_dir=str(tmp_path / "a"), **CPU)
    fit(small_model(), loaders, config)
    assert load_checkpoint(tmp_path / "a" / "last.pt")["optimizer"] is None
    kept = TrainConfig(
        epochs=2, lr=1e-2, checkpoint_dir=str(tmp_path / "b"), keep_optimizer=True, **CPU
    )
    fit(small_model(), loaders, kept)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["optimizer"]["state"]
    longer, ran = TrainConfig(**{**config.to_dict(), "epochs": 3}), EpochsRun()
    history = fit(small_model(), loaders, longer, callbacks=[ran])
    assert ran.epochs == [3] and len(history) == 3
    assert "fresh optimizer" in capsys.readouterr().out


def test_predict_takes_a_config_like_evaluate(loaders):
    model = small_model()
    logits, y = predict(model, loaders.test, TrainConfig(**CPU))
    assert logits.shape == (len(y), 4) and np.array_equal(logits, predict(model, loaders.test)[0])
