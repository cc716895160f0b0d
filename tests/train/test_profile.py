"""`profile_steps`: a profiler table and the time per phase of a training step."""

import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.models import MLP
from dlnb.train.config import TrainConfig
from dlnb.train.profile import PHASES, profile_steps
from tests.train.helpers import toy_data

pytestmark = pytest.mark.usefixtures("single_thread")


class SlowLoader:
    """Batches of a DataLoader, each `delay` seconds late (a slow data pipeline)."""

    def __init__(self, loader, delay):
        self.loader, self.delay = loader, delay

    def __iter__(self):
        for batch in self.loader:
            time.sleep(self.delay)
            yield batch


def _loader():
    x, y, _, _ = toy_data()
    return DataLoader(TensorDataset(x, y), batch_size=32)  # 2 batches


def test_profile_steps_tables_the_operators_and_times_every_phase():
    model = MLP(8, hidden=(8,), out_features=3)
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(device="cpu", amp="off", progress=False)
    result = profile_steps(model, _loader(), config, steps=5, warmup=1, row_limit=4)
    assert result.sort_by == "self_cpu_time_total" and result.device == "cpu"
    lines = result.table.strip().splitlines()
    assert "Self CPU" in lines[1] and lines[-1].startswith("Self CPU time total")
    assert len(lines) == 5 + 4  # rules, header and total around row_limit rows
    assert list(result.phase_ms) == list(PHASES)
    assert all(result.phase_ms[phase] > 0 for phase in ("data", "forward", "backward"))
    assert result.step_ms == pytest.approx(sum(result.phase_ms.values()))
    assert len(result.operators) == 4 and not set(result.operators) & set(PHASES)
    times = list(result.operators.values())
    assert times == sorted(times, reverse=True) and times[-1] > 0
    assert any(name.startswith("aten::") for name in result.operators)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert all(changed)  # it trains: 6 optimizer steps on a loader of 2 batches (cycled)


def test_a_slow_data_pipeline_shows_up_in_the_data_phase():
    config = TrainConfig(device="cpu", amp="off", progress=False)
    model = MLP(8, hidden=(8,), out_features=3)
    result = profile_steps(model, SlowLoader(_loader(), 0.03), config, steps=3, warmup=0)
    assert result.phase_ms["data"] >= 25
    assert max(result.phase_ms, key=result.phase_ms.__getitem__) == "data"


def test_profile_steps_checks_its_arguments():
    with pytest.raises(ValueError, match="steps >= 1"):
        profile_steps(MLP(8, out_features=3), _loader(), TrainConfig(device="cpu"), steps=0)
    with pytest.raises(ValueError, match="empty loader"):
        profile_steps(MLP(8, out_features=3), [], TrainConfig(device="cpu"), warmup=1)


def test_describe_profile_takes_every_number_from_the_profiles():
    from dlnb.train.profile import StepProfile, describe_profile

    def made(data_ms: float) -> StepProfile:
        phases = {"data": data_ms, "forward": 2.0, "loss": 0.5, "backward": 3.0, "optimizer": 1.0}
        ops = {"aten::conv2d": 1.5, "aten::addmm": 0.5, "aten::relu": 0.25, "aten::add": 0.1}
        return StepProfile("table", phases, ops, "self_cpu_time_total", "cpu", 10)

    profiles = {"DataLoader": made(3.5), "resident loader": made(0.5)}
    text = describe_profile(profiles, "DataLoader", "cpu")
    assert "With the DataLoader, one step took 10.0 ms on cpu: data 35%, forward 20%" in text
    assert "`aten::conv2d` (1.50 ms), `aten::addmm` (0.50 ms), `aten::relu` (0.25 ms)." in text
    assert "3.50 ms from the DataLoader and 0.50 ms from the resident loader" in text
    assert "(the resident loader was quicker" in text and "host times" not in text
    slow = {"DataLoader": made(0.2), "resident loader": made(0.5)}
    gpu = describe_profile(slow, "DataLoader", "cuda")
    assert "(the DataLoader was quicker" in gpu and "host times" in gpu
