"""A trained model on disk: its weights as safetensors, what it needs besides (preprocessing,
label names, how to rebuild it) as a small JSON file that also pins the weights' sha256, and
optionally a model card (`model_card.json` + `.md`) whose content hash covers both, so loading
notices when the weights or the metadata no longer match the card."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlnb.data.registry import sha256_file
from dlnb.train.card import ModelCard, describe_test_set, package_versions
from dlnb.train.checkpoint import unwrap_model

__all__ = [
    "WEIGHTS",
    "META",
    "CARD",
    "ModelCardMismatch",
    "ModelInspection",
    "content_hash",
    "inspect_model",
    "save_model",
    "load_model_files",
    "load_weights_into",
]

WEIGHTS, META, CARD = "model.safetensors", "dlnb.json", "model_card.json"
CARD_VERSIONS = ("dlnb", "torch", "safetensors", "numpy")


class ModelCardMismatch(ValueError):
    """A saved model's files do not match what its model card (or `dlnb.json`) records."""


def _canonical(record: dict[str, Any]) -> bytes:
    """`record` as canonical JSON: sorted keys, no spaces, so equal content hashes equally."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(
    weights: str | Path, record: dict[str, Any], card: dict[str, Any] | None = None
) -> str:
    """One sha256 over the weights file's bytes, the canonical JSON of its metadata `record` and,
    given one, of the model `card`'s own fields (all but `content_hash`): editing any is detected."""
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    h.update(b"\0")
    h.update(_canonical(record))
    if card is not None:
        h.update(b"\0")
        h.update(_canonical({k: v for k, v in card.items() if k != "content_hash"}))
    return h.hexdigest()


def _pinned(card: ModelCard, directory: Path, record: dict[str, Any]) -> ModelCard:
    """`card` with the saved files' hashes (and, if it names none, the package versions)."""
    artefacts = {
        **card.artefacts,
        WEIGHTS: record["sha256"],
        META: hashlib.sha256(_canonical(record)).hexdigest(),
    }
    card = dataclasses.replace(
        card, artefacts=artefacts, versions=card.versions or package_versions(CARD_VERSIONS)
    )
    fields = json.loads(json.dumps(card.to_dict()))  # as the JSON file will read back
    return dataclasses.replace(card, content_hash=content_hash(directory / WEIGHTS, record, fields))


def save_model(
    directory: str | Path,
    model: nn.Module,
    meta: dict[str, Any],
    card: ModelCard | dict | None = None,
) -> Path:
    """Write `model`'s weights (`model.safetensors`), `meta` plus their hash (`dlnb.json`) and,
    given a `card`, the model card pinned to both by a content hash (`model_card.json` + `.md`)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if isinstance(card, dict):  # checked before anything is written
        card = ModelCard(**{"name": str(meta.get("kind", directory.name)), **card})
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap_model(model).state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    record = {
        **meta,
        "weights": WEIGHTS,
        "sha256": sha256_file(directory / WEIGHTS),
        "shapes": {k: list(v.shape) for k, v in state.items()},
        **({"card": CARD} if card is not None else {}),
    }
    (directory / META).write_text(json.dumps(record, indent=1))
    for stale in (directory / CARD, (directory / CARD).with_suffix(".md")):
        stale.unlink(missing_ok=True)  # a card of an earlier save would no longer match
    if card is not None:
        _pinned(card, directory, record).write(directory, Path(CARD).stem)
    return directory


def _card_problems(directory: Path, record: dict[str, Any]) -> list[str]:
    """How the files in `directory` differ from its model card ([] when they match or none)."""
    path = directory / CARD
    if not path.is_file():
        return []
    try:
        card = json.loads(path.read_text())
        artefacts, expected = dict(card.get("artefacts") or {}), str(card["content_hash"])
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        return [f"{CARD} is not a dlnb model card ({type(exc).__name__}: {exc})"]
    if content_hash(directory / WEIGHTS, record, card) == expected:
        return []
    problems = []
    weights, meta = sha256_file(directory / WEIGHTS), hashlib.sha256(_canonical(record)).hexdigest()
    if weights != artefacts.get(WEIGHTS):
        problems.append(
            f"{WEIGHTS} differs from the weights the card describes (sha256 {weights[:12]}... "
            f"instead of {str(artefacts.get(WEIGHTS))[:12]}...): altered, or from another save"
        )
    if meta != artefacts.get(META):
        problems.append(
            f"{META} differs from the metadata the card describes (preprocessing, label names or "
            f"settings edited; canonical sha256 {meta[:12]}... instead of "
            f"{str(artefacts.get(META))[:12]}...)"
        )
    if len(problems) == 2:
        problems.append(f"{CARD} may belong to another model")
    if not problems:  # both files match what the card describes: the card itself changed
        problems.append(
            f"{CARD} was edited after saving (its metrics, data, use or limits, or its content "
            "hash, no longer match what was saved with these weights)"
        )
    return problems


def load_model_files(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and the metadata `save_model` wrote, after checking the weights' sha256 and,
    where there is a model card, its content hash (`ModelCardMismatch` when they differ)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / META).is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{directory} holds no saved dlnb model (expected {WEIGHTS} and {META}); save one with "
            "the `.save(directory)` of a trained model."
        )
    meta = json.loads((directory / META).read_text())
    fix = (
        "Save the model again from the trained object (`.save(directory)`), or restore the "
        f"original files; `dlnb.lifecycle.inspect_model({str(directory)!r})` shows what is there."
    )
    if "card" in meta and not (directory / CARD).is_file():
        warnings.warn(
            f"{directory} was saved with a model card, but {CARD} is missing: loading with the "
            f"weights' sha256 checked only. {fix}",
            stacklevel=2,
        )
    problems = _card_problems(directory, meta)
    if problems:
        raise ModelCardMismatch(
            f"{directory} does not match its model card: " + "; ".join(problems) + ". " + fix
        )
    actual = sha256_file(directory / WEIGHTS)
    if actual != meta.get("sha256"):
        raise ModelCardMismatch(
            f"{directory / WEIGHTS} does not match the sha256 recorded in {META} "
            f"({actual[:12]}... instead of {str(meta.get('sha256'))[:12]}...): the weights were "
            f"altered or come from another save. {fix}"
        )
    return load_file(str(directory / WEIGHTS)), meta


@dataclass
class ModelInspection:
    """What a saved-model folder holds: its files, metadata, model card and any mismatch."""

    directory: Path
    files: dict[str, int]
    meta: dict[str, Any] | None
    card: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Whether the folder holds a model card whose content hash matches its files."""
        return self.card is not None and not self.problems

    def __str__(self) -> str:
        files = ", ".join(f"{name} ({size:,} bytes)" for name, size in self.files.items())
        lines = [f"{self.directory}: {files or 'no files'}"]
        if self.meta is not None:
            lines.append(f"kind {self.meta.get('kind', '?')}, classes {self.meta.get('classes')}")
        if self.card is None:
            why = (
                f"saved with one, but {CARD} is missing"
                if self.meta and "card" in self.meta
                else "saved without one (or before dlnb wrote cards)"
            )
            lines.append(
                f"no model card: {why}; it loads with the weights' sha256 checked only. Save it "
                "again with a card to pin weights and metadata to it."
            )
        else:
            lines.append(f"model card: {self.card.get('name')}")
            for row in self.card.get("metrics") or []:
                value, test_set = row.get("value"), describe_test_set(row.get("test_set"))
                shown = f"{value:.4g}" if isinstance(value, float) else value
                lines.append(f"  {row.get('metric')} = {shown} on {test_set}")
            if not self.problems:
                lines.append(f"content hash verified: {str(self.card.get('content_hash'))[:16]}...")
        lines += [f"MISMATCH: {p}" for p in self.problems]
        return "\n".join(lines)


def inspect_model(directory: str | Path) -> ModelInspection:
    """What the saved model in `directory` holds and whether its card matches its files."""
    directory = Path(directory)
    files = {p.name: p.stat().st_size for p in sorted(directory.glob("*")) if p.is_file()}
    if META not in files or WEIGHTS not in files:
        missing = [n for n in (WEIGHTS, META) if n not in files]
        return ModelInspection(
            directory, files, None, None, [f"no saved dlnb model: {missing} missing"]
        )
    meta = json.loads((directory / META).read_text())
    problems = _card_problems(directory, meta)
    if not problems and sha256_file(directory / WEIGHTS) != meta.get("sha256"):
        problems.append(f"{WEIGHTS} does not match the sha256 recorded in {META}")
    try:
        card = json.loads((directory / CARD).read_text()) if CARD in files else None
    except ValueError:
        card = {}  # there, but unreadable: `problems` says so
    return ModelInspection(directory, files, meta, card, problems)


def load_weights_into(
    model: nn.Module, state: dict[str, torch.Tensor], where: str = ""
) -> nn.Module:
    """Load `state` into `model`, naming every missing, unexpected or differently shaped tensor."""
    own = model.state_dict()
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(own.keys() & state.keys())
        if own[k].shape != state[k].shape
    ]
    if missing or extra or shapes:
        raise ValueError(
            f"The saved weights{' in ' + where if where else ''} do not fit this model: missing "
            f"{missing or 'none'}, unexpected {extra or 'none'}, other shapes "
            f"{shapes or 'none'}. Build the model with the settings it was saved with."
        )
    model.load_state_dict(state)
    return model
