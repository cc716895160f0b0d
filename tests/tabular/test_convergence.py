"""EpochCount (dlnb.tabular.convergence): the epochs a fit_table run trained, for claims.capped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlnb import TrainConfig, claims
from dlnb.tabular import fit_table, table_from_frame
from dlnb.tabular.convergence import EpochCount


def _table(signal: bool) -> object:
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = (x > 0).astype(int) if signal else rng.integers(0, 2, 400)
    return table_from_frame(pd.DataFrame({"x": x, "y": y}), "y", task="binary")


def test_a_run_that_hits_its_cap_is_counted_at_the_cap_and_flagged():
    count = EpochCount()
    fit_table(_table(True), config=TrainConfig(epochs=3, progress=False), callbacks=[count])
    assert count.epochs == 3
    assert claims.capped("mlp", [count.epochs], 3).any_capped


def test_early_stopping_ends_a_run_before_a_high_cap():
    count = EpochCount()
    config = TrainConfig(epochs=200, progress=False)
    fit_table(_table(False), config=config, patience=2, callbacks=[count])
    assert 2 < count.epochs < 200  # noise: the validation loss soon stops improving
    assert not claims.capped("mlp", [count.epochs], 200).any_capped
