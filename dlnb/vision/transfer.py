"""The transfer-learning experiment: two pretrained methods against two fair baselines.

On a `dlnb.vision.targets.Setup` (a task, a pretrained network, a from-scratch one):

- `pixels`: logistic regression on the raw pixels (a baseline that needs no network at all);
- `scratch`: the from-scratch network, trained on augmented batches;
- `probe`: the pretrained network frozen, a logistic regression on its features (a linear probe);
- `fine_tune`: the pretrained network with the probe as its head, then every layer trained on
  augmented batches.

Every method tunes its one setting on the task's validation set, never on the test set: the
L2 strength `C` of each logistic regression (every run), the learning rate of each network (the
first seed of each training-set size tries the whole grid; later seeds reuse its choice). A
network takes the same number of optimizer steps whatever the size of its training set; fine-tuning
(which starts from features that already work) gets fewer than training from scratch.

`transfer_methods` hands the methods to `dlnb.experiments.data_efficiency`; each run returns its
test and validation accuracy, the setting it chose (`setting`), its training seconds, its test
logits (`test_logits`, for error analysis), the validation accuracy of every setting it tried
(`grid`) and, for the networks, the training `history`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from dlnb.data.loaders import Loaders
from dlnb.experiments import Method
from dlnb.runtime import Timer, pick_device
from dlnb.train.config import TrainConfig
from dlnb.train.history import History
from dlnb.train.loop import fit, predict
from dlnb.vision.finetune import extract_features, linear_probe
from dlnb.vision.targets import Network, Setup, Task

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("pixels", "scratch", "probe", "fine_tune")
#: The methods that start from the pretrained network, and the baselines that do not.
PRETRAINED, BASELINES = ("probe", "fine_tune"), ("pixels", "scratch")
#: The one setting each method tunes on the validation set.
SETTINGS = {"pixels": "C", "scratch": "learning rate", "probe": "C", "fine_tune": "learning rate"}


def _network_training() -> TrainConfig:
    return TrainConfig(epochs=4, scheduler="onecycle", weight_decay=0.01, progress=False)


@dataclass(frozen=True)
class Budget:
    """How every method is tuned and trained.

    `train` configures every network run (`epochs`, each followed by a validation pass; the
    optimizer, schedule and weight decay; the device): a run sets only its learning rate (from
    its grid) and its seed. A run takes `scratch_steps` (from scratch) or `fine_tune_steps`
    optimizer steps on batches of `batch_size` images drawn with replacement from its training
    set. `scratch_lrs` and `fine_tune_lrs` are the learning rates tried, `cs` the logistic
    regressions' inverse L2 strengths.
    """

    train: TrainConfig = field(default_factory=_network_training)
    scratch_steps: int = 800
    fine_tune_steps: int = 400
    batch_size: int = 32
    scratch_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    fine_tune_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
    cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)

    def __post_init__(self) -> None:
        if min(self.scratch_steps, self.fine_tune_steps) < self.train.epochs:
            raise ValueError("Budget needs at least one step per epoch of `train`.")
        if self.batch_size < 1:
            raise ValueError(f"Budget.batch_size must be at least 1, got {self.batch_size}.")
        if not (self.scratch_lrs and self.fine_tune_lrs and self.cs):
            raise ValueError("Budget needs at least one learning rate of each kind and one C.")

    def describe(self) -> str:
        """The budget in two plain lines: how networks train, and the grids tried."""
        train, grid = self.train, _grid
        return (
            f"networks: {self.scratch_steps} steps from scratch, {self.fine_tune_steps} "
            f"fine-tuning, batches of {self.batch_size}, {train.epochs} epochs of "
            f"{train.optimizer} ({train.scheduler or 'constant'} schedule, weight decay "
            f"{train.weight_decay:g}) on {train.device}\n"
            f"tried on validation: learning rates {grid(self.scratch_lrs)} (from scratch), "
            f"{grid(self.fine_tune_lrs)} (fine-tuning), a tie on accuracy going to the lower "
            f"validation loss; C {grid(self.cs)} (logistic regressions)"
        )


def _grid(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _labels(task: Task, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(task.labels[rows].astype(np.int64))


def _scores(logits: torch.Tensor | np.ndarray, task: Task, rows: np.ndarray) -> float:
    predicted = np.asarray(logits).argmax(axis=1)
    return float((predicted == task.labels[rows]).mean())


@torch.no_grad()
def fit_logistic(
    features: torch.Tensor, task: Task, rows: np.ndarray, cs: Sequence[float]
) -> tuple[nn.Linear, dict]:
    """A logistic regression on `features[rows]` for each C in `cs`; the best on validation wins.

    Returns its head (an `nn.Linear`) and its result: test and validation accuracy, `setting`
    (the C chosen), `train_seconds` (the whole search), `test_logits` and `grid` (C -> accuracy).
    """
    from threadpoolctl import threadpool_limits

    grid, best = {}, None
    with Timer() as timer, threadpool_limits(1):  # fits this small run fastest on one BLAS thread
        for c in cs:
            head = linear_probe(features[rows], task.labels[rows], task.num_classes, C=c)
            grid[c] = _scores(head(features[task.valid]), task, task.valid)
            if best is None or grid[c] > grid[best[0]]:
                best = (c, head)
    assert best is not None  # cs is not empty
    c, head = best
    logits = head(features[task.test]).numpy()
    return head, {
        "test_accuracy": _scores(logits, task, task.test),
        "valid_accuracy": grid[c],
        "setting": c,
        "train_seconds": timer.seconds,
        "test_logits": logits,
        "grid": grid,
    }


def train_network(
    network: Network,
    model: nn.Module,
    inputs: torch.Tensor,
    task: Task,
    rows: np.ndarray,
    lr: float,
    steps: int,
    budget: Budget,
    seed: int,
    device: torch.device,
) -> History:
    """Train `model` for `steps` steps on `inputs[rows]` (`network.augment` on every batch),
    validating after each of `budget.train.epochs` epochs, at learning rate `lr`."""
    per_epoch = max(1, steps // budget.train.epochs)
    sampler = RandomSampler(
        range(len(rows)), replacement=True, num_samples=per_epoch * budget.batch_size
    )
    # Whole batches read by one index each (batch_size=None): no per-image reads and collation.
    batches = BatchSampler(sampler, budget.batch_size, drop_last=False)
    train = DataLoader(
        TensorDataset(inputs[rows], _labels(task, rows)), batch_size=None, sampler=batches
    )
    valid = DataLoader(TensorDataset(inputs[task.valid], _labels(task, task.valid)), batch_size=256)
    config = replace(budget.train, lr=lr, seed=seed, device=str(device))
    trained = model if network.augment is None else nn.Sequential(network.augment, model)
    return fit(trained, Loaders(train, valid), config, device=device)


def _network_method(
    network: Network,
    inputs: torch.Tensor,
    task: Task,
    budget: Budget,
    lrs: Sequence[float],
    steps: int,
    start: Callable[[np.ndarray, int], nn.Module],
    device: torch.device,
) -> Method:
    """A run that trains `start(rows, seed)` at the learning rate the validation set picks."""
    test = DataLoader(TensorDataset(inputs[task.test], _labels(task, task.test)), batch_size=256)
    chosen: dict[int, float] = {}  # training-set size -> learning rate picked on the first seed

    def run(indices: np.ndarray, seed: int) -> dict:
        rows = task.pool[indices]
        tried = [chosen[len(rows)]] if len(rows) in chosen else list(lrs)
        grid, best, rank = {}, None, (-1.0, 0.0)
        for lr in tried:
            model = start(rows, seed)
            with Timer(device) as timer:
                history = train_network(
                    network, model, inputs, task, rows, lr, steps, budget, seed, device
                )
            grid[lr] = history.last("valid_accuracy")
            # The highest validation accuracy; on a tie, the lower validation loss.
            if (grid[lr], -history.last("valid_loss")) > rank:
                best, rank = (
                    (lr, model, history, timer.seconds),
                    (grid[lr], -history.last("valid_loss")),
                )
        assert best is not None  # lrs is not empty
        lr, model, history, seconds = best
        chosen.setdefault(len(rows), lr)
        logits, _ = predict(model, test, device)
        return {
            "test_accuracy": _scores(logits, task, task.test),
            "valid_accuracy": grid[lr],
            "setting": lr,
            "train_seconds": seconds,
            "test_logits": logits,
            "grid": grid,
            "history": history,
        }

    return run


def transfer_methods(
    setup: Setup, budget: Budget = Budget(), methods: Sequence[str] = METHODS
) -> dict[str, Method]:
    """The methods as runs for `dlnb.experiments.data_efficiency`: name -> run(indices, seed).

    `indices` index the task's pool. Every image is prepared for each network once, and the
    pretrained network's features of every image are extracted once, here.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {METHODS}.")
    if "scratch" in methods and setup.scratch is None:
        raise ValueError("This setup has no from-scratch network: leave 'scratch' out.")
    task, device = setup.task, pick_device(budget.train.device)
    runs: dict[str, Method] = {}
    if "pixels" in methods:
        runs["pixels"] = _logistic(task.pixels(), task, budget)
    if "probe" in methods or "fine_tune" in methods:
        runs |= _pretrained_methods(setup.pretrained, task, budget, device)
    if setup.scratch is not None and "scratch" in methods:
        runs["scratch"] = _scratch_method(setup.scratch, task, budget, device)
    return {name: runs[name] for name in methods}


def _logistic(features: torch.Tensor, task: Task, budget: Budget) -> Method:
    return lambda indices, seed: fit_logistic(features, task, task.pool[indices], budget.cs)[1]


def _pretrained_methods(
    pretrained: Network, task: Task, budget: Budget, device: torch.device
) -> dict[str, Method]:
    """The probe on the pretrained network's frozen features, and fine-tuning from that probe."""
    inputs = pretrained.prepare(task.images)
    features = extract_features(pretrained.build(task.num_classes), inputs, device=device)

    def from_probe(rows: np.ndarray, seed: int) -> nn.Module:
        model = pretrained.build(task.num_classes)
        model.head = fit_logistic(features, task, rows, budget.cs)[0]
        return model

    fine_tune = _network_method(
        pretrained, inputs, task, budget, budget.fine_tune_lrs, budget.fine_tune_steps,
        from_probe, device,
    )  # fmt: skip
    return {"probe": _logistic(features, task, budget), "fine_tune": fine_tune}


def _scratch_method(scratch: Network, task: Task, budget: Budget, device: torch.device) -> Method:
    """The from-scratch network, freshly initialised from each run's seed."""

    def fresh(rows: np.ndarray, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return scratch.build(task.num_classes)

    inputs = scratch.prepare(task.images)
    return _network_method(
        scratch, inputs, task, budget, budget.scratch_lrs, budget.scratch_steps, fresh, device
    )


def _best_only_at_an_edge(grid: dict[float, float]) -> bool:
    values = [grid[k] for k in sorted(grid)]
    best = max(values)
    return len(values) > 1 and values.count(best) == 1 and best in (values[0], values[-1])


def tuning_report(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """What each method chose on the validation set, for each size, in the runs of `seed` (the
    seed that tunes the networks): the setting and the validation accuracy of every value tried,
    and whether the best value is an end of the grid (a better one may lie beyond it)."""
    import pandas as pd

    rows = []
    for run in frame[frame.seed == seed].itertuples():
        grid = dict(run.grid)
        rows.append(
            {
                "method": run.method,
                "per_class": run.per_class,
                "setting": SETTINGS[str(run.method)],
                "chosen": run.setting,
                "best only at an edge": _best_only_at_an_edge(grid),
                "validation accuracy": ", ".join(f"{k:g}: {grid[k]:.3f}" for k in sorted(grid)),
            }
        )
    return pd.DataFrame(rows).set_index(["method", "per_class"])
