"""The deep tabular models: shapes, bad inputs, search spaces, and that they learn with dlnb.train.loop.fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.data.loaders import Loaders
from dlnb.tabular.models import (
    DEFAULTS,
    SEARCH_SPACES,
    FTTransformer,
    TabularMLP,
    build_model,
    suggest_params,
)
from dlnb.train.callbacks import EarlyStopping
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit

# Tiny models: one thread is faster and does not oversubscribe a shared machine.
pytestmark = pytest.mark.usefixtures("single_thread")

MODELS = [
    lambda n, c, o: TabularMLP(n, c, o, hidden=(32,)),
    lambda n, c, o: TabularMLP(n, c, o, hidden=(32,), embed_dim=4),
    lambda n, c, o: FTTransformer(n, c, o, d_token=16, n_blocks=1),
]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("n_num, cards", [(3, [4, 7]), (0, [5]), (2, [])])
def test_shapes_and_gradients(make, n_num, cards):
    torch.manual_seed(0)
    model = make(n_num, cards, 3)
    x_num = torch.randn(6, n_num)
    x_cat = (
        torch.stack([torch.randint(0, k, (6,)) for k in cards], 1)
        if cards
        else torch.zeros(6, 0, dtype=torch.long)
    )
    out = model(x_num, x_cat)
    assert out.shape == (6, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad and p.numel())


@pytest.mark.parametrize("make", MODELS)
def test_wrong_input_shapes_are_clear_errors(make):
    model = make(3, [4], 2)
    with pytest.raises(ValueError, match=r"x_num of shape \(batch, 3\)"):
        model(torch.randn(5, 4), torch.zeros(5, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="x_cat of shape"):
        model(torch.randn(5, 3), torch.zeros(5, 2, dtype=torch.long))


def test_models_need_some_feature_and_ft_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="at least one"):
        TabularMLP(0, [], 2)
    with pytest.raises(ValueError, match="at least one"):
        FTTransformer(0, [], 2)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        FTTransformer(2, [3], 2, d_token=30, n_heads=8)


def test_suggest_params_stay_in_the_space_keep_fixed_names_and_hold_the_defaults():
    import optuna

    for model, space in SEARCH_SPACES.items():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        draws = []
        for _ in range(30):
            trial = study.ask()
            draws.append(suggest_params(model, trial, {"dropout": 0.25}))
            study.tell(trial, 0.0)
        for name, dist in space.items():
            values = [d[name] for d in draws]
            if name == "dropout":
                assert set(values) == {0.25}  # fixed: not searched
                assert "dropout" not in study.trials[0].params
            elif isinstance(dist, list):
                assert set(values) <= set(dist) and len(set(values)) > 1
            else:
                assert dist[1] <= min(values) and max(values) <= dist[2]
            default = DEFAULTS[model][name]  # the first trial of every study is the defaults
            assert default in dist if isinstance(dist, list) else dist[1] <= default <= dist[2]
        assert len({str(d) for d in draws}) > 20  # the draws differ
    lr = [d["lr"] for d in draws]  # ft_transformer: log-uniform over 1e-4..1e-3
    assert 0.3 < np.mean(np.array(lr) < 10**-3.5) < 0.7
    with pytest.raises(ValueError, match="Unknown model"):
        suggest_params("catboost", study.ask())


def _level_task(n: int = 2000, levels: int = 30, seed: int = 0):
    """The label is a fixed function of a categorical level: only x_cat can explain it."""
    g = torch.Generator().manual_seed(seed)
    x_cat = torch.randint(1, levels + 1, (n, 1), generator=g)
    effect = torch.randint(0, 2, (levels + 1,), generator=torch.Generator().manual_seed(99))
    return torch.randn(n, 2, generator=g), x_cat, effect[x_cat[:, 0]]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "emb_mlp", "ft_transformer"])
def test_models_learn_from_categorical_codes_with_the_shared_training_loop(name):
    from torch.utils.data import DataLoader, TensorDataset

    def loader(x_num, x_cat, y, shuffle):
        ds = TensorDataset(x_num, x_cat, y)
        return DataLoader(
            ds,
            batch_size=128,
            shuffle=shuffle,
            collate_fn=lambda rows: (
                (torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])),
                torch.stack([r[2] for r in rows]),
            ),
        )

    train, valid = _level_task(seed=0), _level_task(600, seed=1)
    params = {**DEFAULTS[name], "lr": 3e-3}
    if name == "ft_transformer":
        params.update(d_token=16, n_blocks=1)
    model = build_model(name, params, 2, [31], 2)
    loaders = Loaders(loader(*train, True), loader(*valid, False))
    fit(
        model,
        loaders,
        TrainConfig(epochs=25, lr=params["lr"], progress=False),
        callbacks=[EarlyStopping(patience=5)],
    )
    assert evaluate(model, loaders.valid, device=torch.device("cpu"))["accuracy"] > 0.95


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ft_transformer_trains_on_cuda_with_mixed_precision():
    from dlnb.tabular.comparison import Budget, compare
    from dlnb.tabular.tables import synthetic_table

    results = compare(
        synthetic_table(2000, cardinality=10),
        models=("xgboost", "ft_transformer"),
        seeds=(0,),
        progress=False,
        budget=Budget(
            trials=1, train=TrainConfig(epochs=10, device="cuda", progress=False), max_rounds=100
        ),
    )
    f = results.frame.set_index("model")
    assert f.loc["ft_transformer", "accuracy"] > f.loc["majority", "accuracy"] + 0.1
    assert f.loc["xgboost", "accuracy"] > f.loc["majority", "accuracy"] + 0.1
