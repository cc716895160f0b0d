"""DDP helpers in a single process: defaults, sharded loaders, epochs; then `fit` in two gloo
processes under torchrun, against one process with the same global batch."""

import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders, make_loaders
from dlnb.models import MLP
from dlnb.train import distributed as dd
from dlnb.train.config import TrainConfig
from dlnb.train.launch import launch
from dlnb.train.loop import fit
from tests.train.helpers import assert_same_weights, toy_data

pytestmark = pytest.mark.usefixtures("single_thread")


def _indices(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y]


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in dd.TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


def test_a_plain_process_is_rank_0_of_1(no_torchrun, capsys):
    assert not dd.launched_by_torchrun()
    assert dd.init_distributed() is False
    assert (dd.rank(), dd.world_size(), dd.local_rank()) == (0, 1, 0)
    assert dd.is_main_process() and not dd.is_distributed()
    assert dd.all_reduce_sum({"loss": 2.5, "n": 3}) == {"loss": 2.5, "n": 3}
    assert dd.all_reduce_mean({"acc": 0.5}) == {"acc": 0.5}
    dd.log("hello", 1)
    dd.log("everyone", all_ranks=True)
    assert capsys.readouterr().out == "hello 1\neveryone\n"
    with dd.process_group() as joined:
        assert joined is False
    assert dd.rank_device(torch.device("cuda")) == torch.device("cuda")


def test_one_process_trains_with_a_strategy_that_leaves_the_run_as_it_is(no_torchrun, capsys):
    from dlnb.data.resident import GpuLoader

    strategy = dd.current_strategy()
    assert type(strategy) is dd.SingleProcess
    assert (strategy.rank, strategy.world_size, strategy.is_main) == (0, 1, True)
    model, cpu = torch.nn.Linear(2, 1), torch.device("cpu")
    loader = GpuLoader(torch.zeros(6, 2), torch.arange(6), batch_size=2, device="cpu")
    assert strategy.wrap(model, cpu) is model
    assert strategy.prepare_loaders(loader, None, seed=0) == (loader, None)
    strategy.set_epoch(loader, 3)
    assert loader.epoch == 3  # a loader's own epoch counts in one process too
    assert strategy.reduce_sum({"loss": 2.5, "n": 3}) == {"loss": 2.5, "n": 3}
    assert strategy.any_rank(True) and not strategy.any_rank(False)
    with strategy.no_sync(model):
        model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad is not None
    strategy.barrier()
    strategy.log_start(loader, cpu)
    assert capsys.readouterr().out == ""


def test_backend_follows_the_hardware(no_torchrun, monkeypatch):
    monkeypatch.delenv("DLNB_DIST_BACKEND", raising=False)
    expected = "nccl" if torch.cuda.is_available() else "gloo"
    assert dd.default_backend() == expected
    monkeypatch.setenv("DLNB_DIST_BACKEND", "gloo")
    assert dd.default_backend() == "gloo"


def test_rank_device_picks_the_local_gpu(monkeypatch):
    for name, value in {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    assert dd.launched_by_torchrun()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dd.rank_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert dd.rank_device(torch.device("cuda:0")) == torch.device("cuda", 0)  # as asked
    assert dd.rank_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # more ranks than GPUs: share
    assert dd.rank_device(torch.device("cuda")) == torch.device("cuda", 0)


def test_nccl_only_when_every_local_rank_has_a_gpu(monkeypatch):
    monkeypatch.delenv("DLNB_DIST_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert dd.default_backend() == "gloo"  # two processes cannot share one GPU with NCCL
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert dd.default_backend() == "nccl"


@pytest.mark.parametrize("shuffle", [True, False])
def test_training_shards_partition_each_epoch_and_reshuffle(shuffle):
    ds = TensorDataset(torch.zeros(10, 1), torch.arange(10))
    loader = DataLoader(ds, batch_size=2, shuffle=shuffle)
    shards = [dd.shard_loader(loader, train=True, seed=0, ranks=(r, 2)) for r in range(2)]
    epoch0 = [_indices(s) for s in shards]
    assert sorted(epoch0[0] + epoch0[1]) == list(range(10))
    assert all(s.batch_size == 2 for s in shards)
    for s in shards:
        dd.set_epoch(s, 1)
    epoch1 = [_indices(s) for s in shards]
    assert sorted(epoch1[0] + epoch1[1]) == list(range(10))
    assert (epoch1 != epoch0) == shuffle


def test_evaluation_shards_count_every_example_once():
    ds = TensorDataset(torch.zeros(11, 1), torch.arange(11))
    loader = DataLoader(ds, batch_size=4)
    parts = [_indices(dd.shard_loader(loader, train=False, ranks=(r, 3))) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(11))  # no padding, no duplicates


def test_shard_loader_uses_a_loaders_own_shard_method():
    from dlnb.data.resident import GpuLoader

    loader = GpuLoader(torch.zeros(6, 1), torch.arange(6), batch_size=2, device="cpu")
    shard = dd.shard_loader(loader, train=True, ranks=(1, 2))
    assert (shard.rank, shard.world, shard.even) == (1, 2, True) and len(shard) == 2
    assert dd.shard_loader(loader, train=False, ranks=(1, 2)).even is False


def test_unshardable_loaders_are_a_clear_error():
    with pytest.raises(TypeError, match="Cannot shard a list"):
        dd.shard_loader([1, 2], train=True, ranks=(0, 2))
    ds = TensorDataset(torch.zeros(4, 1), torch.arange(4))
    custom = DataLoader(ds, batch_sampler=[[0, 1], [2, 3]])
    with pytest.raises(TypeError, match="batch_sampler"):
        dd.shard_loader(custom, train=True, ranks=(0, 2))

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(4))

    stream = DataLoader(Stream(), batch_size=2)
    for train in (True, False):
        with pytest.raises(TypeError, match="without a length"):
            dd.shard_loader(stream, train=train, ranks=(0, 2))


def test_set_epoch_reaches_loader_or_sampler():
    loaders = make_loaders(torch.zeros(8, 1), torch.arange(8), batch_size=2, valid_fraction=0.0)
    shard = dd.shard_loader(loaders.train, train=True, ranks=(0, 2))
    dd.set_epoch(shard, 7)
    assert shard.sampler.epoch == 7
    dd.set_epoch(loaders.train, 7)  # a plain loader has nothing to tell: no error


# --- fit in two processes ------------------------------------------------------------------------

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
    from dlnb.train.config import TrainConfig
    from dlnb.data.loaders import Loaders
    from dlnb.models import MLP

    out = Path(sys.argv[1])
    data = torch.load(out / "data.pt", weights_only=True)
    with distributed.process_group():
        rank = distributed.rank()
        assert distributed.all_reduce_sum({"r": rank + 1})["r"] == 3
        strategy = distributed.current_strategy()
        assert isinstance(strategy, distributed.DistributedDataParallel)
        assert (strategy.rank, strategy.world_size, strategy.is_main) == (rank, 2, rank == 0)
        assert strategy.any_rank(rank == 1) and not strategy.any_rank(False)
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
            # keep_optimizer: the second launch extends a finished run, so it needs Adam's state
            config = TrainConfig(epochs=epochs, grad_accum=2, device="cpu", progress=False,
                                 checkpoint_dir=str(out / "ckpt"), keep_optimizer=True)
            return model, train.fit(model, loaders, config)

        model, _ = run(2)
        torch.save(model.state_dict(), out / f"epoch2_rank{rank}.pt")
        model, history = run(3)  # a second launch of the job: resumes after epoch 2
        torch.save({"weights": model.state_dict(), "history": history.records},
                   out / f"final_rank{rank}.pt")
    tasks = Path("/proc/self/task")  # Linux: the names of this process's threads, C++ ones too
    if tasks.is_dir():
        names = [(task / "comm").read_text().strip() for task in tasks.iterdir()]
        (out / f"threads_rank{rank}").write_text("\\n".join(names))
""")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    tmp_path, weight_snapshots
):
    x, y, xv, yv = toy_data()
    torch.manual_seed(0)
    init = MLP(8, hidden=(16,), out_features=3).state_dict()
    torch.save({"x": x, "y": y, "xv": xv, "yv": yv, "init": init}, tmp_path / "data.pt")
    (tmp_path / "worker.py").write_text(WORKER)

    # 2 ranks x batch 4 x grad_accum 2 = 16 examples per optimizer step, like one process below
    output = launch(str(tmp_path / "worker.py"), [tmp_path], nproc=2, timeout_s=300)

    model = MLP(8, hidden=(16,), out_features=3)
    model.load_state_dict(init)
    keep = weight_snapshots
    loaders = Loaders(
        DataLoader(TensorDataset(x, y), batch_size=16),
        DataLoader(TensorDataset(xv, yv), batch_size=16),
    )
    single = fit(model, loaders, TrainConfig(epochs=3, device="cpu", progress=False), [keep])

    ranks = [torch.load(tmp_path / f"final_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert_same_weights(ranks[0]["weights"], ranks[1]["weights"])  # replicas stay in sync
    assert_same_weights(ranks[0]["weights"], model.state_dict(), DDP_ATOL, DDP_RTOL)
    for r in (0, 1):  # resuming the DDP job after epoch 2 continued the same trajectory
        epoch2 = torch.load(tmp_path / f"epoch2_rank{r}.pt", weights_only=True)
        assert_same_weights(epoch2, keep.weights[2], DDP_ATOL, DDP_RTOL)
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
    if Path("/proc/self/task").is_dir():
        # Leaving the group ended gloo's threads: any still running at interpreter shutdown can
        # abort a worker at exit ("terminate called without an active exception").
        for r in (0, 1):
            threads = (tmp_path / f"threads_rank{r}").read_text().split()
            assert not [name for name in threads if "gloo" in name], threads
