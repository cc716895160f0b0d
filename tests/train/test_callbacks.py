import copy
from types import SimpleNamespace

import IPython
import IPython.display
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders
from dlnb.models import MLP
from dlnb.train.callbacks import Callback, EarlyStopping, LivePlot, ProgressBar
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = {"device": "cpu", "progress": False}


def batches(n_batches: int = 3, size: int = 8):
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(size, 4, generator=g), torch.randint(0, 2, (size,), generator=g))
        for _ in range(n_batches)
    ]


def tiny_model():
    torch.manual_seed(0)
    return MLP(4, hidden=(8,), out_features=2)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, state):
        self.events.append("fit_start")

    def on_epoch_start(self, state):
        self.events.append(f"epoch_start {state.epoch}")

    def on_batch_end(self, state):
        self.events.append(f"batch {state.epoch}.{state.batch}")

    def on_epoch_end(self, state):
        self.events.append(f"epoch_end {state.epoch} {sorted(state.epoch_metrics)}")

    def on_fit_end(self, state):
        self.events.append("fit_end")


def test_events_arrive_in_order():
    rec = Recorder()
    fit(tiny_model(), SimpleNamespace(train=batches()), TrainConfig(epochs=2, **CPU), [rec])
    keys = "['epoch', 'lr', 'seconds', 'train_accuracy', 'train_loss']"
    assert rec.events == [
        "fit_start",
        "epoch_start 1",
        "batch 1.1",
        "batch 1.2",
        "batch 1.3",
        f"epoch_end 1 {keys}",
        "epoch_start 2",
        "batch 2.1",
        "batch 2.2",
        "batch 2.3",
        f"epoch_end 2 {keys}",
        "fit_end",
    ]


def test_max_steps_per_epoch_limits_the_batches():
    rec = Recorder()
    fit(
        tiny_model(),
        SimpleNamespace(train=batches(5)),
        TrainConfig(epochs=1, max_steps_per_epoch=2, **CPU),
        [rec],
    )
    assert [e for e in rec.events if e.startswith("batch")] == ["batch 1.1", "batch 1.2"]


class StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            state.stop, state.stop_reason = True, "enough"


def test_a_callback_can_stop_the_run():
    history = fit(
        tiny_model(), SimpleNamespace(train=batches()), TrainConfig(epochs=5, **CPU), [StopAfter(2)]
    )
    assert len(history) == 2 and history.stop_reason == "enough"


# --- early stopping ------------------------------------------------------------------------------


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def blobs_with_lying_validation():
    """Training labels the model can learn, validation labels that disagree with them: the
    better the model fits the training set, the worse its validation loss."""
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, 4, generator=g)
    y = torch.randint(0, 4, (384,), generator=g)
    x = centres[y] + torch.randn(384, 4, generator=g)
    train = DataLoader(
        TensorDataset(x[:256], y[:256]),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    valid = DataLoader(TensorDataset(x[256:], (y[256:] + 1) % 4), batch_size=128)
    return Loaders(train, valid)


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_stops_and_restores_the_best_weights(restore_best, weight_snapshots):
    torch.manual_seed(0)
    model = MLP(4, hidden=(16,), out_features=4)
    stopper, snaps = EarlyStopping(patience=2, restore_best=restore_best), weight_snapshots
    history = fit(
        model,
        blobs_with_lying_validation(),
        TrainConfig(epochs=20, lr=1e-2, **CPU),
        [stopper, snaps],
    )
    losses = history["valid_loss"]
    best = losses.index(min(losses)) + 1
    assert stopper.best_epoch == best and stopper.best == min(losses)
    assert len(history) == best + 2 < 20  # stopped after `patience` epochs without improvement
    assert "early stopping: valid_loss did not improve for 2 epochs" in history.stop_reason
    final = model.state_dict()
    assert same(final, snaps.weights[best]) is restore_best
    assert same(final, snaps.weights[len(history)]) is not restore_best


def state_with(epoch, **metrics):
    return SimpleNamespace(
        epoch=epoch, epoch_metrics=metrics, model=torch.nn.Linear(1, 1), stop=False, stop_reason=""
    )


def run(stopper, key, values):
    """Feed `values` to `stopper`; return the epoch at which it stopped (None if it did not)."""
    for epoch, value in enumerate(values, start=1):
        state = state_with(epoch, **{key: value})
        stopper.on_epoch_end(state)
        if state.stop:
            return epoch
    return None


def test_a_rerun_of_an_early_stopped_run_trains_no_further(tmp_path):
    def run_once():
        torch.manual_seed(0)
        model = MLP(4, hidden=(16,), out_features=4)
        config = TrainConfig(epochs=20, lr=1e-2, checkpoint_dir=str(tmp_path), **CPU)
        return model, fit(model, blobs_with_lying_validation(), config, [EarlyStopping(patience=2)])

    first_model, first = run_once()
    again_model, again = run_once()
    assert len(again) == len(first) < 20
    assert again.stop_reason == first.stop_reason != ""
    assert same(again_model.state_dict(), first_model.state_dict())  # best weights restored again


def test_early_stopping_in_max_mode_and_with_min_delta():
    stopper = EarlyStopping(monitor="valid_accuracy", mode="max", patience=3)
    assert run(stopper, "valid_accuracy", [0.5, 0.7, 0.6, 0.65, 0.69, 0.9]) == 5
    assert (stopper.best, stopper.best_epoch) == (0.7, 2)
    rising = EarlyStopping(monitor="valid_accuracy", mode="max", patience=1)
    assert run(rising, "valid_accuracy", [0.1, 0.2, 0.3]) is None
    strict = EarlyStopping(patience=2, min_delta=0.05)
    assert run(strict, "valid_loss", [1.0, 0.97, 0.96]) == 3  # improvements below min_delta


def test_early_stopping_state_survives_a_resume():
    stopper = EarlyStopping(patience=3)
    run(stopper, "valid_loss", [1.0, 0.5, 0.6])
    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(copy.deepcopy(stopper.state_dict()))
    assert (resumed.best, resumed.best_epoch, resumed.wait) == (0.5, 2, 1)
    assert same(resumed.best_weights, stopper.best_weights)


def test_early_stopping_bad_input_is_named():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'lowest'"):
        EarlyStopping(mode="lowest")
    with pytest.raises(KeyError, match="monitors 'valid_loss', which this run does not record"):
        fit(
            tiny_model(),
            SimpleNamespace(train=batches()),
            TrainConfig(epochs=1, **CPU),
            [EarlyStopping()],
        )


# --- progress and plots --------------------------------------------------------------------------


def test_progress_prints_one_line_per_epoch_when_headless(capsys):
    config = TrainConfig(epochs=2, device="cpu", progress=True)
    fit(tiny_model(), SimpleNamespace(train=batches()), config, [ProgressBar(), StopAfter(2)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # the bar given was used, not a second one
    assert lines[0].startswith("epoch 1/2  train_loss=") and "train_accuracy=" in lines[0]
    assert lines[1].startswith("epoch 2/2") and lines[2] == "enough"


def test_progress_bar_is_one_bar_per_fit_reset_each_epoch_and_never_destroyed(monkeypatch):
    # Issue 16 item 1: leave=False bars destroyed their widget model, so a reloaded page showed
    # "Error displaying widget: model not found" for every finished epoch.
    import tqdm.auto

    from dlnb.train import callbacks

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.calls, self.n = kwargs, [], 0
            bars.append(self)

        def reset(self, total=None):
            self.calls.append(("reset", total))
            self.n = 0

        def set_description(self, desc, refresh=True):
            self.calls.append(("desc", desc))

        def update(self, k):
            self.n += k

        def set_postfix(self, **kwargs):
            pass

        def refresh(self):
            pass

        def close(self):
            self.calls.append(("close", self.n))

    bars: list[Bar] = []
    monkeypatch.setattr(callbacks, "in_notebook", lambda: True)
    monkeypatch.setattr(callbacks, "is_headless", lambda: False)
    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    config = TrainConfig(epochs=3, device="cpu", progress=True)
    fit(tiny_model(), SimpleNamespace(train=batches()), config)
    (bar,) = bars  # one bar for the whole fit
    assert bar.kwargs == {"total": 3, "desc": "epoch 1/3", "leave": True}
    assert bar.calls == [
        ("reset", 3),
        ("desc", "epoch 2/3"),
        ("reset", 3),
        ("desc", "epoch 3/3"),
        ("close", 3),  # closed once, full, with leave=True: the widget stays
    ]


class Handle:
    def __init__(self):
        self.updates = 0

    def update(self, obj):
        self.updates += 1


@pytest.fixture
def notebook(monkeypatch):
    """A fake Jupyter kernel whose `display` calls are recorded."""

    import matplotlib.pyplot as plt

    plt.close(plt.figure())  # let pyplot settle its backend before it can see the fake kernel

    class ZMQInteractiveShell:
        pass

    shown, handle = [], Handle()

    def display(obj, display_id=None):
        shown.append((type(obj).__name__, display_id))
        return handle

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.setattr(IPython.display, "display", display)
    return shown, handle


def test_live_plot_redraws_each_epoch_in_a_live_notebook(notebook, monkeypatch):
    monkeypatch.setenv("DLNB_HEADLESS", "0")
    shown, handle = notebook
    fit(
        tiny_model(), SimpleNamespace(train=batches()), TrainConfig(epochs=3, live_plot=True, **CPU)
    )
    assert shown == [("Figure", True)] and handle.updates == 2


def test_live_plot_draws_one_final_figure_under_papermill(notebook):
    shown, handle = notebook  # DLNB_HEADLESS=1, as the runner sets it
    fit(
        tiny_model(), SimpleNamespace(train=batches()), TrainConfig(epochs=3, live_plot=True, **CPU)
    )
    assert shown == [("Figure", None)] and handle.updates == 0


def test_live_plot_is_silent_outside_notebooks(monkeypatch):
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a))
    history = fit(
        tiny_model(), SimpleNamespace(train=batches()), TrainConfig(epochs=1, **CPU), [LivePlot()]
    )
    assert len(history) == 1 and shown == []


def test_early_stopping_refuses_a_nan_instead_of_keeping_inf_as_best():
    # Issue 15 item 10: a NaN valid loss ended runs with "best inf at epoch 0".
    stopper = EarlyStopping(patience=1)
    state = SimpleNamespace(epoch_metrics={"valid_loss": float("nan")}, epoch=1)
    with pytest.raises(ValueError, match="valid_loss is nan at epoch 1"):
        stopper.on_epoch_end(state)
