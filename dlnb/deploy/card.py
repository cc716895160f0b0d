"""A model card for a served model: what it is, what it was trained and tested on, how it behaves.

`ModelCard` is plain data (JSON-serialisable) with a Markdown rendering; `write` puts both
next to the exported model, so the card travels with the artefact it describes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
    """What a reader of a deployed model needs: artefacts, data, metrics with their test set, parity, latency, use, limits.

    `metrics` rows are {"metric", "value", "test_set"}; `parity` maps a runtime to its largest
    logit difference from eager PyTorch; `latency` maps a description to milliseconds.
    """

    name: str
    description: str
    artefacts: dict[str, str]
    data: dict
    metrics: list[dict]
    parity: dict[str, float]
    latency: dict[str, float]
    intended_use: str
    limitations: list[str]
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.metrics:
            if not {"metric", "value", "test_set"} <= set(row):
                raise ValueError(f"each metric needs metric, value and test_set, got {row}.")
        if not self.limitations:
            raise ValueError("a model card must state at least one limitation.")

    def to_dict(self) -> dict:
        """The card as JSON-serialisable data."""
        return asdict(self)

    def to_markdown(self) -> str:
        """The card rendered as Markdown."""
        data = self.data
        lines = [f"# Model card: {self.name}", "", self.description, "", "## Artefacts (sha256)"]
        lines += [f"- `{name}`: `{digest}`" for name, digest in self.artefacts.items()]
        lines += ["", f"## Data: {data.get('name', '?')}", "", str(data.get("description", ""))]
        lines += [f"- licence: {data.get('licence', '?')}; homepage: {data.get('homepage', '?')}"]
        lines += [f"- sources, in order: {'; '.join(data.get('sources', [])) or '?'}"]
        lines += [f"- pinned sha256 of `{k}`: `{v}`" for k, v in data.get("checksums", {}).items()]
        lines += ["", "## Metrics", "", "| metric | value | test set |", "|---|---|---|"]
        lines += [f"| {m['metric']} | {_fmt(m['value'])} | {m['test_set']} |" for m in self.metrics]
        lines += ["", "## Parity with eager PyTorch (largest absolute logit difference)"]
        lines += [f"- {runtime}: {value:.1e}" for runtime, value in self.parity.items()]
        lines += ["", "## Latency (ms)"]
        lines += [f"- {what}: {ms:.3f}" for what, ms in self.latency.items()]
        lines += ["", "## Intended use", "", self.intended_use, "", "## Limitations"]
        lines += [f"- {text}" for text in self.limitations]
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


def _fmt(value) -> str:
    """A metric value for a table: 4 significant digits for floats."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
