"""Training at scale: DDP equals one process, accumulation equals a bigger batch, resume is exact,
out-of-memory during find_batch_size is handled, mixed precision and channels_last run."""

import copy
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders, make_loaders
from dlnb.data.resident import gpu_loaders
from dlnb.models import MLP, LeNet5
from dlnb.train.callbacks import Callback
from dlnb.train.launch import launch
from dlnb.train.loop import TrainConfig, fit
from dlnb.train.measure import measure_fit
from dlnb.train.memory import find_batch_size, is_out_of_memory
from dlnb.train.precision import autocast_dtype

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: one thread is faster

# DDP averages two half-batch gradients where one process averages the whole batch: the same
# sum in a different order, so weights agree to float32 rounding, not bit for bit.
DDP_ATOL, DDP_RTOL = 1e-5, 1e-4

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path

    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from dlnb.train import loop as train
    from dlnb.train import distributed
    from dlnb.data.loaders import Loaders
    from dlnb.models import MLP

    out = Path(sys.argv[1])
    data = torch.load(out / "data.pt", weights_only=True)
    with distributed.process_group():
        rank = distributed.rank()
        assert distributed.all_reduce_sum({"r": rank + 1})["r"] == 3
        real_save = train.save_checkpoint

        def spy(path, payload):  # record which ranks write checkpoints
            with open(out / f"saved_by_rank{rank}", "a") as f:
                f.write("saved\\n")
            return real_save(path, payload)

        train.save_checkpoint = spy

        def run(epochs):
            model = MLP(8, hidden=(16,), out_features=3)
            model.load_state_dict(data["init"])
            loaders = Loaders(DataLoader(TensorDataset(data["x"], data["y"]), batch_size=4),
                              DataLoader(TensorDataset(data["xv"], data["yv"]), batch_size=4))
            config = train.TrainConfig(epochs=epochs, grad_accum=2, device="cpu",
                                       progress=False, checkpoint_dir=str(out / "ckpt"))
            return model, train.fit(model, loaders, config)

        model, _ = run(2)
        torch.save(model.state_dict(), out / f"epoch2_rank{rank}.pt")
        model, history = run(3)  # a second launch of the job: resumes after epoch 2
        torch.save({"weights": model.state_dict(), "history": history.records},
                   out / f"final_rank{rank}.pt")
""")


class KeepWeights(Callback):
    """Copies of the weights at the end of each epoch."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, state):
        self.weights[state.epoch] = copy.deepcopy(state.model.state_dict())


def _assert_same_weights(a, b, atol=0.0, rtol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol, msg=f"weights {k} differ")


def _toy_data(n=64, n_valid=11):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + n_valid, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x[:n], y[:n], x[n:], y[n:]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    x, y, xv, yv = _toy_data()
    torch.manual_seed(0)
    init = MLP(8, hidden=(16,), out_features=3).state_dict()
    torch.save({"x": x, "y": y, "xv": xv, "yv": yv, "init": init}, tmp_path / "data.pt")
    (tmp_path / "worker.py").write_text(WORKER)

    # 2 ranks x batch 4 x grad_accum 2 = 16 examples per optimizer step, like one process below
    output = launch(str(tmp_path / "worker.py"), [tmp_path], nproc=2, timeout_s=300)

    model = MLP(8, hidden=(16,), out_features=3)
    model.load_state_dict(init)
    keep = KeepWeights()
    loaders = Loaders(
        DataLoader(TensorDataset(x, y), batch_size=16),
        DataLoader(TensorDataset(xv, yv), batch_size=16),
    )
    single = fit(model, loaders, TrainConfig(epochs=3, device="cpu", progress=False), [keep])

    ranks = [torch.load(tmp_path / f"final_rank{r}.pt", weights_only=True) for r in (0, 1)]
    _assert_same_weights(ranks[0]["weights"], ranks[1]["weights"])  # replicas stay in sync
    _assert_same_weights(ranks[0]["weights"], model.state_dict(), DDP_ATOL, DDP_RTOL)
    for r in (0, 1):  # resuming the DDP job after epoch 2 continued the same trajectory
        epoch2 = torch.load(tmp_path / f"epoch2_rank{r}.pt", weights_only=True)
        _assert_same_weights(epoch2, keep.weights[2], DDP_ATOL, DDP_RTOL)
    # metrics are reduced over ranks: every rank reports the whole data set's numbers
    for ddp_record, record in zip(ranks[0]["history"], single.records, strict=True):
        for key in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy"):
            assert ddp_record[key] == pytest.approx(record[key], rel=1e-5, abs=1e-6), key
    without_time = [
        [{k: v for k, v in rec.items() if k != "seconds"} for rec in rank["history"]]
        for rank in ranks
    ]
    assert without_time[1] == without_time[0]
    assert (tmp_path / "saved_by_rank0").read_text().count("saved") == 3  # 2 epochs + 1 resumed
    assert not (tmp_path / "saved_by_rank1").exists()
    assert output.count("DDP: 2 processes") == 2  # logged by rank 0 only, once per fit


def _accum_run(batch_size, grad_accum, n=60):
    x, y, _, _ = _toy_data(n)
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
    _assert_same_weights(accumulated, big, atol=1e-6, rtol=1e-5)
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
    return gpu_loaders(x, y, batch_size=16, valid_fraction=0.25, seed=0, device="cpu", translate=2)


def test_an_interrupted_run_on_the_gpu_loader_resumes_to_the_same_result(tmp_path):
    # tests/test_train.py kills and resumes a DataLoader run; the resident loader must replay
    # the same shuffles and augmentations too (fit tells it the epoch). DDP: the test above.
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

    _assert_same_weights(restarted.state_dict(), reference.state_dict())
    assert resumed.records[-1]["valid_loss"] == uninterrupted.records[-1]["valid_loss"]
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3]


class OutOfMemoryAbove(nn.Module):
    """A model that runs out of memory (as CUDA would) above `limit` examples per batch."""

    def __init__(self, limit, error=torch.OutOfMemoryError):
        super().__init__()
        self.norm, self.head = nn.BatchNorm1d(4), nn.Linear(4, 2)
        self.limit, self.error, self.tried = limit, error, []

    def forward(self, x):
        self.tried.append(len(x))
        x = self.norm(x)
        if len(x) > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.head(x)


def test_find_batch_size_halves_after_out_of_memory_and_restores_the_model(capsys):
    model = OutOfMemoryAbove(limit=100)
    before = copy.deepcopy(model.state_dict())
    size = find_batch_size(model, torch.randn(4), start=1024, device="cpu")
    assert size == 64
    assert model.tried == [1024, 512, 256, 128, 64]
    _assert_same_weights(model.state_dict(), before)  # BatchNorm statistics put back
    assert all(p.grad is None for p in model.parameters())
    assert "batch size 128 does not fit" in capsys.readouterr().out


def test_find_batch_size_knows_cpu_allocator_failures_and_gives_up_clearly():
    model = OutOfMemoryAbove(limit=10, error=RuntimeError)  # message-only out-of-memory
    assert find_batch_size(model, torch.randn(4), start=40, device="cpu", verbose=False) == 10
    with pytest.raises(RuntimeError, match="Even batch size 2 does not fit"):
        find_batch_size(
            OutOfMemoryAbove(limit=1),
            torch.randn(4),
            start=8,
            min_size=2,
            device="cpu",
            verbose=False,
        )
    with pytest.raises(ValueError, match="LeNet5 expects"):  # other errors are not swallowed
        find_batch_size(LeNet5(), torch.randn(3, 28, 28), start=8, device="cpu")
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_mixed_precision_choices():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16' needs a CUDA GPU"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="amp='fp16'"):
        fit(
            MLP(8, hidden=(4,), out_features=3),
            Loaders(DataLoader(TensorDataset(*_toy_data()[:2]), batch_size=16)),
            TrainConfig(amp="fp16", device="cpu"),
        )


def test_bf16_autocast_trains_on_the_cpu():
    x, y, _, _ = _toy_data(n=96)
    loaders = Loaders(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True))
    torch.manual_seed(0)
    history = fit(
        MLP(8, hidden=(32,), out_features=3),
        loaders,
        TrainConfig(epochs=8, lr=1e-2, amp="bf16", device="cpu", progress=False),
    )
    assert history.records[-1]["train_loss"] < 0.6 * history.records[0]["train_loss"]
    assert history.records[-1]["train_accuracy"] > 0.8


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


def test_measure_fit_reports_speed_memory_and_accuracy():
    x, y, xv, yv = _toy_data()
    valid = DataLoader(TensorDataset(xv, yv), batch_size=16)
    loaders = Loaders(DataLoader(TensorDataset(x, y), batch_size=16), valid, valid)
    result = measure_fit(
        MLP(8, hidden=(8,), out_features=3),
        loaders,
        TrainConfig(epochs=2, device="cpu", progress=False),
    )
    assert result["images_per_s"] == pytest.approx(2 * 64 / result["seconds"])
    assert result["memory_mib"] > 0 and 0 <= result["valid_accuracy"] <= 1
    assert result["test_accuracy"] == result["valid_accuracy"]  # same data, same final weights


@pytest.mark.gpu
def test_fit_on_cuda_with_amp_compile_channels_last_and_the_gpu_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1, 28, 28, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    loaders = gpu_loaders(x, y, batch_size=64, device="cuda", translate=1)
    model = LeNet5(num_classes=2)
    history = fit(
        model,
        loaders,
        TrainConfig(epochs=3, amp="auto", compile=True, channels_last=True, progress=False),
    )
    assert history.last("valid_accuracy") > 0.7
    big = find_batch_size(LeNet5(), x[0], start=2**21, device="cuda", verbose=False)
    assert 1 <= big <= 2**21
