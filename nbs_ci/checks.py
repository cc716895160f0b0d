"""Repository checks on the curriculum: clean notebooks, one literal parameters cell, manifest in sync."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from nbs_ci.manifest import MANIFEST, NOTEBOOKS, ManifestError, load_manifest


def parameter_problems(source: str) -> list[str]:
    """Problems with a parameters cell's source: only literal assignments, PROFILE among them."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"parameters cell is not valid Python ({e.msg}, line {e.lineno})"]
    problems: list[str] = []
    names: set[str] = set()
    for stmt in tree.body:
        targets: list[ast.expr] | None = None
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value:
            targets, value = [stmt.target], stmt.value
        names_here = [t.id for t in targets or () if isinstance(t, ast.Name)]
        if value is None or targets is None or len(names_here) != len(targets):
            problems.append(
                f"parameters cell line {stmt.lineno}: only `NAME = literal` assignments "
                f"are allowed, found `{ast.unparse(stmt)}`"
            )
            continue
        try:
            ast.literal_eval(value)
        except ValueError:
            problems.append(
                f"parameters cell line {stmt.lineno}: `{ast.unparse(stmt)}` computes a "
                "value; assign a literal here and derive values in the next cell"
            )
        names.update(names_here)
    if "PROFILE" not in names:
        problems.append('parameters cell has no `PROFILE = "smoke"` assignment')
    return problems


def notebook_problems(path: Path | str) -> list[str]:
    """Problems with one committed notebook: outputs, execution counts, its parameters cell."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        return [f"{path.name}: cannot be read as a notebook ({type(e).__name__}: {e})"]
    problems = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    with_outputs = [i for i, c in code if c.get("outputs")]
    counted = [i for i, c in code if c.get("execution_count") is not None]
    if with_outputs:
        problems.append(
            f"{path.name}: cells {with_outputs} have outputs; clear them "
            "(jupyter nbconvert --clear-output --inplace) before committing"
        )
    if counted:
        problems.append(
            f"{path.name}: cells {counted} have execution counts; clear outputs before committing"
        )
    tagged = [(i, c) for i, c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(
            f"{path.name}: needs exactly one code cell tagged `parameters`, "
            f"found {len(tagged)} (cells {[i for i, _ in tagged]})"
        )
    for _, cell in tagged[:1]:
        problems += [f"{path.name}: {p}" for p in parameter_problems(cell.source)]
    return problems


def manifest_sync_problems(
    manifest: Path | str | None = None, notebooks_dir: Path | str | None = None
) -> list[str]:
    """Notebooks missing from the manifest and manifest entries without a notebook."""
    manifest, notebooks_dir = Path(manifest or MANIFEST), Path(notebooks_dir or NOTEBOOKS)
    raw = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    listed = {e.get("name") for e in (raw.get("notebooks") or []) if isinstance(e, dict)}
    present = {p.stem for p in notebooks_dir.glob("*.ipynb")}
    folder = notebooks_dir.name
    return [
        f"{folder}/{n}.ipynb is not in {manifest.name}; add an entry for it"
        for n in sorted(present - listed)
    ] + [
        f"{manifest.name} lists {n!r} but {folder}/{n}.ipynb does not exist"
        for n in sorted(str(n) for n in listed - present)
    ]


def check_repo(
    manifest: Path | str | None = None, notebooks_dir: Path | str | None = None
) -> list[str]:
    """Every repository check at once; an empty list means the curriculum is clean."""
    notebooks_dir = Path(notebooks_dir or NOTEBOOKS)
    problems = manifest_sync_problems(manifest, notebooks_dir)
    try:
        load_manifest(manifest, notebooks_dir)
    except ManifestError as e:
        problems += [f"manifest: {p}" for p in e.problems if "does not exist" not in p]
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        problems += notebook_problems(path)
    return problems
