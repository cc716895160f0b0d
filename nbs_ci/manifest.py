"""Load and validate `nbs_ci/manifest.yaml`: which notebooks run, their budgets, parameters and gates.

The texts saying where each gate comes from live beside it in `references.md` (nbs_ci.references),
read and checked with the manifest.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nbs_ci.references import read_references, references_path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).resolve().parent / "manifest.yaml"
NOTEBOOKS = ROOT / "notebooks"

PROFILES = ("smoke", "full")
ACCELERATORS = ("cpu", "gpu")
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
ENTRY_KEYS = {"name", "accelerator", "budget_s", "parameters", "gates"}
REQUIRED_KEYS = {"name", "budget_s"}
GATE_KEYS = {"metric", "op", "value"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REFERENCES_HINT = "references.md beside the manifest"


class ManifestError(ValueError):
    """The manifest has problems; `.problems` lists every one of them."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{path} has {len(problems)} problem(s):\n{lines}\n"
            "Fix these entries (format: nbs_ci/README.md) and run again."
        )


@dataclass(frozen=True)
class Gate:
    """One threshold on a recorded metric, e.g. test_accuracy >= 0.95."""

    metric: str
    op: str
    value: float | int | str | bool

    def check(self, metrics: dict) -> dict:
        """Compare the recorded metrics with this gate; returns a JSON-able result."""
        result = {"metric": self.metric, "op": self.op, "threshold": self.value}
        if self.metric not in metrics:
            return {
                **result,
                "actual": None,
                "passed": False,
                "reason": f"missing: the notebook did not record {self.metric!r}",
            }
        actual = metrics[self.metric]
        result["actual"] = actual
        if self.op != "==" and not _is_number(actual):
            return {
                **result,
                "passed": False,
                "reason": f"recorded {actual!r}, which is not a number",
            }
        passed = bool(OPS[self.op](actual, self.value))
        reason = "" if passed else f"{actual!r} {self.op} {self.value!r} is false"
        return {**result, "passed": passed, "reason": reason}


@dataclass(frozen=True)
class Entry:
    """One notebook of the curriculum as the manifest describes it."""

    name: str
    budget_s: dict[str, float]
    accelerator: str = "cpu"
    parameters: dict[str, dict] = field(default_factory=dict)
    gates: dict[str, tuple[Gate, ...]] = field(default_factory=dict)
    line: int = 0

    def path(self, notebooks_dir: Path) -> Path:
        """The notebook file this entry runs."""
        return Path(notebooks_dir) / f"{self.name}.ipynb"

    def run_parameters(self, profile: str) -> dict:
        """The papermill parameters of `profile`: `PROFILE` set to it, unless `parameters` sets it."""
        return {"PROFILE": profile, **self.parameters.get(profile, {})}


@dataclass(frozen=True)
class Manifest:
    """The validated manifest: its entries in file order, and their `references.md` texts."""

    path: Path
    entries: tuple[Entry, ...]
    references: dict[str, str] = field(default_factory=dict)

    def reference(self, name: str) -> str:
        """Where the gates of notebook `name` come from ("" when references.md has no section)."""
        return self.references.get(name, "")

    def select(self, only: list[str] | None = None) -> list[Entry]:
        """The entries named in `only` (all when None); an unknown name is a ValueError."""
        if not only:
            return list(self.entries)
        known = {e.name: e for e in self.entries}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ValueError(
                f"--only names {unknown} that are not in {self.path}; known notebooks: "
                f"{sorted(known) or 'none'}."
            )
        return [known[n] for n in dict.fromkeys(only)]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _entry_lines(text: str) -> list[int]:
    """1-based line of each item under `notebooks:` (best effort: [] when the YAML is odd)."""
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "notebooks" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _check_profiles(where: str, key: str, value, problems: list[str]) -> dict:
    """`value` must be a mapping keyed by known profiles; returns it (or {} when it is not)."""
    if not isinstance(value, dict):
        problems.append(f"{where}: {key} must be a mapping of profile -> value, got {value!r}")
        return {}
    for profile in value:
        if profile not in PROFILES:
            problems.append(
                f"{where}: {key} names unknown profile {profile!r}; profiles: {list(PROFILES)}"
            )
    return {p: v for p, v in value.items() if p in PROFILES}


def _parse_gate(where: str, raw, problems: list[str]) -> Gate | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a gate must be a mapping {{metric, op, value}}, got {raw!r}")
        return None
    bad = len(problems)
    unknown = sorted(set(raw) - GATE_KEYS)
    if unknown:
        problems.append(f"{where}: unknown gate key(s) {unknown}; allowed: {sorted(GATE_KEYS)}")
    missing = sorted(GATE_KEYS - set(raw))
    if missing:
        problems.append(f"{where}: gate is missing {missing}")
    op, value, metric = raw.get("op"), raw.get("value"), raw.get("metric")
    if "op" in raw and op not in OPS:
        problems.append(f"{where}: bad gate op {op!r}; use one of {list(OPS)}")
    if "metric" in raw and not (isinstance(metric, str) and metric):
        problems.append(f"{where}: gate metric must be a name, got {metric!r}")
    if "value" in raw:
        if op in OPS and op != "==" and not _is_number(value):
            problems.append(f"{where}: gate {metric} {op} needs a finite number, got {value!r}")
        elif not isinstance(value, (int, float, str, bool)) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            problems.append(
                f"{where}: gate value must be a finite number, string or bool, got {value!r}"
            )
    if (
        len(problems) > bad
        or not (isinstance(metric, str) and isinstance(op, str))
        or value is None
    ):
        return None  # each reason was added to `problems` above
    return Gate(metric, op, value)


def _parse_entry(
    where: str, raw, problems: list[str], notebooks_dir: Path, line: int
) -> Entry | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: an entry must be a mapping, got {raw!r}")
        return None
    bad = len(problems)
    if "reference" in raw:
        problems.append(
            f"{where}: `reference` texts live in {REFERENCES_HINT}, not in the manifest; "
            "move this one there under a `## NAME` heading"
        )
    unknown = sorted(set(raw) - ENTRY_KEYS - {"reference"})
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; allowed: {sorted(ENTRY_KEYS)}")
    missing = sorted(REQUIRED_KEYS - set(raw))
    if missing:
        problems.append(f"{where}: missing required key(s) {missing}")
    name = raw.get("name")
    if "name" in raw:
        if not (isinstance(name, str) and NAME.match(name)):
            problems.append(
                f"{where}: name must be a file stem like 01_cnn_fundamentals, got {name!r}"
            )
        elif not (Path(notebooks_dir) / f"{name}.ipynb").is_file():
            problems.append(
                f"{where}: notebook {Path(notebooks_dir) / (name + '.ipynb')} does not exist"
            )
    accelerator = raw.get("accelerator", "cpu")
    if accelerator not in ACCELERATORS:
        problems.append(
            f"{where}: accelerator must be one of {list(ACCELERATORS)}, got {accelerator!r}"
        )

    budgets = _check_profiles(where, "budget_s", raw.get("budget_s", {}), problems)
    if "budget_s" in raw:
        for profile in PROFILES:
            b = budgets.get(profile)
            if not (_is_number(b) and b is not None and b > 0):
                problems.append(
                    f"{where}: budget_s.{profile} must be a positive number of seconds, got {b!r}"
                )

    parameters = _check_profiles(where, "parameters", raw.get("parameters") or {}, problems)
    for profile, params in parameters.items():
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            problems.append(
                f"{where}: parameters.{profile} must be a mapping NAME: value, got {params!r}"
            )

    gates = {}
    for profile, items in _check_profiles(where, "gates", raw.get("gates") or {}, problems).items():
        if not isinstance(items, list):
            problems.append(f"{where}: gates.{profile} must be a list of gates, got {items!r}")
            continue
        parsed = [
            _parse_gate(f"{where} gates.{profile}[{i}]", g, problems) for i, g in enumerate(items)
        ]
        gates[profile] = tuple(g for g in parsed if g is not None)

    if len(problems) > bad or not isinstance(name, str):
        return None
    return Entry(
        name=name,
        budget_s={p: float(budgets[p]) for p in PROFILES},
        accelerator=accelerator,
        parameters={p: dict(v) for p, v in parameters.items()},
        gates=gates,
        line=line,
    )


def load_manifest(
    path: Path | str | None = None, notebooks_dir: Path | str | None = None
) -> Manifest:
    """Read and validate the manifest; raises ManifestError listing every problem found."""
    path = Path(path or MANIFEST)
    notebooks_dir = Path(notebooks_dir or NOTEBOOKS)
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        lines = _entry_lines(text)
    except yaml.YAMLError as e:
        raise ManifestError(path, [f"not valid YAML: {e}"]) from e
    if not isinstance(raw, dict) or "notebooks" not in raw:
        raise ManifestError(path, ["the top level must be a mapping with a `notebooks:` list"])
    problems = [
        f"unknown top-level key {k!r}; only `notebooks` is allowed" for k in raw if k != "notebooks"
    ]
    items = raw["notebooks"] or []
    if not isinstance(items, list):
        raise ManifestError(path, [f"`notebooks:` must be a list of entries, got {items!r}"])

    entries: list[Entry] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(items):
        line = lines[i] if i < len(lines) else 0
        label = item.get("name") if isinstance(item, dict) else None
        where = f"line {line} (entry {i + 1}" + (f", {label!r})" if label else ")")
        if isinstance(label, str) and label in first_line:
            problems.append(
                f"{where}: duplicate name {label!r}, first used on line {first_line[label]}"
            )
        elif isinstance(label, str):
            first_line[label] = line
        entry = _parse_entry(where, item, problems, notebooks_dir, line)
        if entry is not None:
            entries.append(entry)
    references, found = read_references(references_path(path))
    problems += found + [
        f"{references_path(path)}: section {name!r} names no notebook of the manifest"
        for name in references
        if name not in first_line
    ]
    if problems:
        raise ManifestError(path, problems)
    return Manifest(path=path, entries=tuple(entries), references=references)
