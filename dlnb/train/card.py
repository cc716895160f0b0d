"""A model card for a served model: what it is, what it was trained and tested on, how it behaves.

`ModelCard` is plain data (JSON-serialisable) with a Markdown rendering; `write` puts both
next to the exported model, so the card travels with the artefact it describes (and
`dlnb.train.saving.save_model(..., card=...)` pins it to the saved weights by a content hash).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from dlnb.data.registry import get_spec, sha256_file


def dataset_provenance(name: str) -> dict:
    """A registered dataset's description, licence, sources and pinned checksums, for a model card."""
    spec = get_spec(name)
    return {
        "name": spec.name,
        "description": spec.description,
        "licence": spec.licence,
        "homepage": spec.homepage,
        "sources": [s.describe() for s in spec.sources],
        "checksums": dict(spec.checksums or {}),
    }


def file_checksums(paths: Iterable[str | Path]) -> dict[str, str]:
    """sha256 of each file, keyed by its file name."""
    return {Path(p).name: sha256_file(p) for p in paths}


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of `packages` ("not installed" for missing ones)."""
    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass
class ModelCard:
    """What a reader of a model needs: artefacts, data, metrics with their test set, use, limits, audit.

    `metrics` rows are {"metric", "value", "test_set"} (`test_set` a description, or
    {"name", "size", "fingerprint"} as `metrics_on` writes); `parity` maps a runtime to its
    largest logit difference from eager PyTorch; `latency` maps a description to milliseconds;
    `bias_audit` is a table (a DataFrame is stored as its list of records); `content_hash` is
    the sha256 that `dlnb.train.saving.save_model` computes over the saved weights, metadata and the card's other fields.
    """

    name: str
    description: str = ""
    artefacts: dict[str, str] = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    parity: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    intended_use: str = ""
    limitations: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    bias_audit: list[dict] = field(default_factory=list)
    content_hash: str = ""

    def __post_init__(self) -> None:
        for row in self.metrics:
            if not {"metric", "value", "test_set"} <= set(row):
                raise ValueError(f"each metric needs metric, value and test_set, got {row}.")
            if isinstance(row["test_set"], dict) and not {"name", "size"} <= set(row["test_set"]):
                raise ValueError(f"a test set needs at least its name and size, got {row}.")
        if not self.intended_use:
            raise ValueError("a model card must state the model's intended use.")
        if not self.limitations:
            raise ValueError("a model card must state at least one limitation.")
        if hasattr(self.bias_audit, "to_json"):  # a DataFrame: its rows, the index kept if named
            frame: Any = self.bias_audit
            frame = frame if frame.index.name is None else frame.reset_index()
            self.bias_audit = json.loads(frame.to_json(orient="records"))

    def to_dict(self) -> dict:
        """The card as JSON-serialisable data."""
        return asdict(self)

    @classmethod
    def read(cls, directory: str | Path, stem: str = "model_card") -> ModelCard:
        """The card that `write` put into `directory` (from its JSON)."""
        return cls(**json.loads((Path(directory) / f"{stem}.json").read_text()))

    def to_markdown(self) -> str:
        """The card rendered as Markdown."""
        data = self.data
        lines = [f"# Model card: {self.name}", "", self.description, "", "## Artefacts (sha256)"]
        lines += [f"- `{name}`: `{digest}`" for name, digest in self.artefacts.items()]
        if self.content_hash:
            lines += [f"- content hash (weights, metadata and this card): `{self.content_hash}`"]
        lines += ["", f"## Data: {data.get('name', '?')}", "", str(data.get("description", ""))]
        if "licence" in data or "homepage" in data:
            lines += [
                f"- licence: {data.get('licence', '?')}; homepage: {data.get('homepage', '?')}"
            ]
        if "sources" in data:
            lines += [f"- sources, in order: {'; '.join(data['sources']) or '?'}"]
        if "rows" in data:
            lines += [f"- rows: {data['rows']:,}"]
        lines += [f"- pinned sha256 of `{k}`: `{v}`" for k, v in data.get("checksums", {}).items()]
        if data.get("fingerprint"):
            lines += [f"- fingerprint of the training data: `{json.dumps(data['fingerprint'])}`"]
        lines += ["", "## Metrics", "", "| metric | value | test set |", "|---|---|---|"]
        lines += [
            f"| {m['metric']} | {_fmt(m['value'])} | {describe_test_set(m['test_set'])} |"
            for m in self.metrics
        ]
        if not self.metrics:
            lines += ["", "No metrics were recorded with this model."]
        if self.parity:
            lines += ["", "## Parity with eager PyTorch (largest absolute logit difference)"]
            lines += [f"- {runtime}: {value:.1e}" for runtime, value in self.parity.items()]
        if self.latency:
            lines += ["", "## Latency (ms)"]
            lines += [f"- {what}: {ms:.3f}" for what, ms in self.latency.items()]
        lines += ["", "## Intended use", "", self.intended_use, "", "## Limitations"]
        lines += [f"- {text}" for text in self.limitations]
        if self.bias_audit:
            columns = list(dict.fromkeys(k for row in self.bias_audit for k in row))
            lines += ["", "## Bias audit", "", "| " + " | ".join(columns) + " |"]
            lines += ["|" + "---|" * len(columns)]
            lines += [
                "| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |"
                for row in self.bias_audit
            ]
        if self.versions:
            lines += ["", "## Software", ""]
            lines += [", ".join(f"{k} {v}" for k, v in self.versions.items())]
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path, stem: str = "model_card") -> tuple[Path, Path]:
        """Write `<stem>.md` and `<stem>.json` into `directory` (next to the model); returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        md, js = directory / f"{stem}.md", directory / f"{stem}.json"
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_dict(), indent=2, default=float))
        return md, js


def metrics_on(
    metrics: Mapping[str, float], name: str, size: int, fingerprint: str | None = None
) -> list[dict]:
    """Card metric rows for `metrics` measured on one test set (its name, size and fingerprint)."""
    test_set = {"name": name, "size": int(size), "fingerprint": fingerprint}
    return [
        {"metric": k, "value": float(v), "test_set": dict(test_set)} for k, v in metrics.items()
    ]


def describe_test_set(test_set: Any) -> str:
    """A metric's test set in words: its description, or its name, size and fingerprint."""
    if not isinstance(test_set, dict):
        return str(test_set)
    size = test_set.get("size")
    text = f"{test_set.get('name', '?')}, {f'{size:,}' if isinstance(size, int) else '?'} examples"
    return text + (
        f", fingerprint `{test_set['fingerprint']}`" if test_set.get("fingerprint") else ""
    )


def _fmt(value: Any) -> str:
    """A value for a table: 4 significant digits for floats."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
