"""Deep tabular models taking `(x_num, x_cat)`, their search spaces, and a builder.

- `TabularMLP(embed_dim=None)`: an MLP on the numeric columns and one-hot categoricals.
- `TabularMLP(embed_dim=8)`: the same MLP, each categorical level mapped to a learned vector.
- `FTTransformer`: every feature becomes a token, a transformer mixes them, a CLS token predicts
  (Gorishniy et al., 2021, "Revisiting Deep Learning Models for Tabular Data").
`x_num` is float (batch, numeric columns), `x_cat` int64 codes (batch, categoricals), 0 = unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlnb.models import MLP

# The search spaces of the tuning study: a list is a categorical choice, a ("log", lo, hi) tuple
# log-uniform, a ("uniform", lo, hi) tuple uniform. DEFAULTS is every model's first trial.
SEARCH_SPACES: dict[str, dict] = {
    "xgboost": {
        "max_depth": [3, 4, 5, 6, 7, 8],
        "learning_rate": ("log", 0.02, 0.3),
        "subsample": ("uniform", 0.6, 1.0),
        "colsample_bytree": ("uniform", 0.5, 1.0),
        "min_child_weight": ("log", 0.5, 20.0),
        "reg_lambda": ("log", 0.1, 10.0),
    },
    "mlp": {
        "width": [64, 128, 256, 512],
        "depth": [1, 2, 3],
        "dropout": [0.0, 0.1, 0.2, 0.3],
        "lr": ("log", 3e-4, 3e-3),
        "weight_decay": ("log", 1e-6, 1e-3),
    },
    "emb_mlp": {
        "width": [64, 128, 256, 512],
        "depth": [1, 2, 3],
        "dropout": [0.0, 0.1, 0.2, 0.3],
        "embed_dim": [4, 8, 16, 32],
        "lr": ("log", 3e-4, 3e-3),
        "weight_decay": ("log", 1e-6, 1e-3),
    },
    "ft_transformer": {
        "d_token": [32, 64, 128],
        "n_blocks": [1, 2, 3],
        "dropout": [0.0, 0.1, 0.2],
        "lr": ("log", 1e-4, 1e-3),
        "weight_decay": ("log", 1e-6, 1e-4),
    },
}
DEFAULTS: dict[str, dict] = {
    "xgboost": {
        "max_depth": 6,
        "learning_rate": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "reg_lambda": 1.0,
    },
    "mlp": {"width": 256, "depth": 2, "dropout": 0.1, "lr": 1e-3, "weight_decay": 1e-5},
    "emb_mlp": {
        "width": 256,
        "depth": 2,
        "dropout": 0.1,
        "embed_dim": 8,
        "lr": 1e-3,
        "weight_decay": 1e-5,
    },
    "ft_transformer": {
        "d_token": 64,
        "n_blocks": 2,
        "dropout": 0.1,
        "lr": 3e-4,
        "weight_decay": 1e-5,
    },
}


def suggest_params(model: str, trial, fixed: dict | None = None) -> dict:
    """Hyperparameters of an Optuna `trial` drawn from `SEARCH_SPACES[model]` (a list as a
    categorical, "log" log-uniformly, "uniform" uniformly); the names in `fixed` are not searched."""
    if model not in SEARCH_SPACES:
        raise ValueError(f"Unknown model {model!r}; choose from {', '.join(SEARCH_SPACES)}.")
    fixed = fixed or {}
    params = {}
    for name, space in SEARCH_SPACES[model].items():
        if name in fixed:
            params[name] = fixed[name]
        elif isinstance(space, list):
            params[name] = trial.suggest_categorical(name, space)
        else:
            params[name] = trial.suggest_float(name, space[1], space[2], log=space[0] == "log")
    return {**params, **fixed}


class CategoricalEmbedding(nn.Module):
    """One learned vector per level of every categorical column: (batch, cols) -> (batch, cols, dim)."""

    def __init__(self, cardinalities: Sequence[int], dim: int):
        super().__init__()
        offsets = torch.tensor([0, *np.cumsum(cardinalities)[:-1]], dtype=torch.long)
        self.offsets: torch.Tensor
        self.register_buffer("offsets", offsets[: len(cardinalities)], persistent=False)
        self.embedding = nn.Embedding(max(int(sum(cardinalities)), 1), dim)
        # Small vectors at first: the network starts from the other features and grows the
        # embeddings as the data supports them (N(0, 1), torch's default, trains worse here).
        nn.init.normal_(self.embedding.weight, std=0.01)

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        return self.embedding(x_cat + self.offsets)


def _check_inputs(x_num: torch.Tensor, x_cat: torch.Tensor, n_num: int, n_cat: int) -> None:
    if x_num.ndim != 2 or x_num.shape[1] != n_num or x_cat.ndim != 2 or x_cat.shape[1] != n_cat:
        raise ValueError(
            f"Expected x_num of shape (batch, {n_num}) and x_cat of shape (batch, {n_cat}), got "
            f"{tuple(x_num.shape)} and {tuple(x_cat.shape)}. Transform the rows with the "
            "preprocessor the model was built for."
        )


class TabularMLP(nn.Module):
    """MLP on numeric columns plus categoricals, one-hot (`embed_dim=None`) or learned embeddings."""

    def __init__(
        self,
        n_num: int,
        cardinalities: Sequence[int],
        out_features: int,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.1,
        embed_dim: int | None = None,
    ):
        super().__init__()
        self.n_num, self.cardinalities = n_num, list(cardinalities)
        self.embed = CategoricalEmbedding(cardinalities, embed_dim) if embed_dim else None
        cat_width = len(cardinalities) * embed_dim if embed_dim else sum(cardinalities)
        if n_num + cat_width == 0:
            raise ValueError("TabularMLP needs at least one numeric or categorical column.")
        self.mlp = MLP(n_num + cat_width, hidden, out_features, dropout)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        _check_inputs(x_num, x_cat, self.n_num, len(self.cardinalities))
        if self.embed is not None:
            cats = self.embed(x_cat).flatten(1)
        else:
            cats = [
                F.one_hot(x_cat[:, j], k).to(x_num.dtype) for j, k in enumerate(self.cardinalities)
            ]
            cats = torch.cat(cats, 1) if cats else x_num.new_zeros(len(x_num), 0)
        return self.mlp(torch.cat([x_num, cats], 1))


class FTTransformer(nn.Module):
    """Feature Tokenizer + Transformer (Gorishniy et al., 2021), pre-norm, prediction from CLS."""

    def __init__(
        self,
        n_num: int,
        cardinalities: Sequence[int],
        out_features: int,
        d_token: int = 64,
        n_blocks: int = 2,
        n_heads: int | None = None,
        ffn_factor: float = 4 / 3,
        dropout: float = 0.1,
    ):
        super().__init__()
        n_heads = n_heads or max(1, d_token // 16)  # heads of 16 dimensions by default
        if n_num + len(cardinalities) == 0:
            raise ValueError("FTTransformer needs at least one numeric or categorical column.")
        if d_token % n_heads:
            raise ValueError(f"d_token ({d_token}) must be a multiple of n_heads ({n_heads}).")
        self.n_num, self.cardinalities = n_num, list(cardinalities)
        bound = 1 / math.sqrt(d_token)
        self.num_weight = nn.Parameter(torch.empty(n_num, d_token).uniform_(-bound, bound))
        self.num_bias = nn.Parameter(torch.empty(n_num, d_token).uniform_(-bound, bound))
        self.cat_embed = CategoricalEmbedding(cardinalities, d_token)
        nn.init.uniform_(self.cat_embed.embedding.weight, -bound, bound)
        self.cat_bias = nn.Parameter(
            torch.empty(len(cardinalities), d_token).uniform_(-bound, bound)
        )
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))
        layer = nn.TransformerEncoderLayer(
            d_token,
            n_heads,
            int(d_token * ffn_factor),
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_blocks, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, out_features)
        )

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        _check_inputs(x_num, x_cat, self.n_num, len(self.cardinalities))
        tokens = [
            x_num.unsqueeze(-1) * self.num_weight + self.num_bias,
            self.cat_embed(x_cat) + self.cat_bias,
        ]
        x = torch.cat([self.cls.expand(len(x_num), -1, -1), *tokens], 1)
        return self.head(self.encoder(x)[:, 0])


def build_model(
    model: str, params: dict, n_num: int, cardinalities: Sequence[int], out_features: int
) -> nn.Module:
    """The network named `model` ("mlp", "emb_mlp", "ft_transformer") with hyperparameters `params`."""
    if model in ("mlp", "emb_mlp"):
        return TabularMLP(
            n_num,
            cardinalities,
            out_features,
            hidden=[params["width"]] * params["depth"],
            dropout=params["dropout"],
            embed_dim=params.get("embed_dim") if model == "emb_mlp" else None,
        )
    if model == "ft_transformer":
        return FTTransformer(
            n_num,
            cardinalities,
            out_features,
            d_token=params["d_token"],
            n_blocks=params["n_blocks"],
            dropout=params["dropout"],
        )
    raise ValueError(f"Unknown neural model {model!r}; choose mlp, emb_mlp or ft_transformer.")
