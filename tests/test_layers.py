"""The layers of dlnb/areas.py hold: no module imports a higher layer or a sibling area, no cycles.

Every import counts: at the top of a module, inside a function, under `TYPE_CHECKING`, relative
or absolute. `from dlnb import x` is an import of the submodule `dlnb.x` when there is one, else of
the package face (`dlnb/__init__.py`). A call of `importlib.import_module` (or `__import__`) with a
computed name hides what it imports, so outside the face it needs a named exception.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlnb import areas

ROOT = Path(__file__).resolve().parents[1]
DYNAMIC = "<computed name>"

#: (importer, imported module or DYNAMIC) -> why this import is allowed. Keep it short.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("dlnb.data.registry", DYNAMIC): (
        "the one exception to the layers: the registry imports each area's dataset catalog by "
        "name (dlnb.areas.catalog_modules()), so `load(name)` works before any area is imported"
    ),
    ("dlnb.deploy.export", DYNAMIC): (
        "not a layer exception: `_require` imports optional third-party libraries (onnxscript, "
        "onnxruntime) by name to say what to install when one is missing; never a dlnb module"
    ),
}


@dataclass(frozen=True)
class Import:
    """One import in the package: who imports what, and where."""

    importer: str
    imported: str  # a module of the package, or DYNAMIC
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package in `package_dir`."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The module `name` denotes: itself, or the longest enclosing module that exists."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _base(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module a `from ... import` reads from (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    package = parts if is_package else parts[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imported_by_call(node: ast.Call) -> str | None:
    """For importlib.import_module(...) / __import__(...): the constant name, else DYNAMIC."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return (
        first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else DYNAMIC
    )


def _targets(node: ast.AST, importer: str, is_package: bool, modules: dict) -> list[str]:
    """The package modules one AST node imports ([] when it is no import of the package)."""
    top = importer.split(".")[0]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _base(node, importer, is_package)
        names = [f"{base}.{a.name}" for a in node.names]
    elif isinstance(node, ast.Call) and (called := _imported_by_call(node)) is not None:
        if called == DYNAMIC:
            return [DYNAMIC]
        names = [called]
    else:
        return []
    return [_resolve(n, modules) for n in names if n == top or n.startswith(top + ".")]


def find_imports(package_dir: Path) -> list[Import]:
    """Every import of the package's own modules, by every module of the package."""
    modules = module_names(package_dir)
    found: dict[Import, None] = {}  # in order, once per module and line
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for imported in _targets(node, importer, is_package, modules):
                if imported != importer:
                    found[Import(importer, imported, path, getattr(node, "lineno", 0))] = None
    return list(found)


def member(module: str) -> str:
    """The layer member a module belongs to: `dlnb.data.loaders` -> `data`, `dlnb` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _rule(imp: Import, layers: tuple[areas.Layer, ...]) -> str | None:
    """Why an import breaks the layers, or None when it keeps them."""
    index = {m: i for i, layer in enumerate(layers) for m in layer.members}
    own, other = member(imp.importer), member(imp.imported)
    if own not in index or other == own or (imp.imported != DYNAMIC and other not in index):
        return None  # same member, or a module in no layer (reported on its own)
    if imp.imported == DYNAMIC:
        if index[own] == len(layers) - 1:
            return None  # the face may import anything
        return "imports a computed module name, which this check cannot see through"
    mine, theirs = layers[index[own]], layers[index[other]]
    if index[other] > index[own]:
        return f"imports a higher layer ({own} is in {mine.name!r}, {other} in {theirs.name!r})"
    if index[other] == index[own] and mine.isolated:
        return f"imports another area of its layer {mine.name!r} ({own} -> {other})"
    return None


def _cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in order:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], order[nxt])
        if low[node] == order[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return found


def check_layers(
    package_dir: Path,
    layers: tuple[areas.Layer, ...] = areas.LAYERS,
    exceptions: dict[tuple[str, str], str] | None = None,
) -> tuple[list[str], set[tuple[str, str]]]:
    """Every broken rule as `file:line: importer -> imported: rule`, and the exceptions used."""
    exceptions = exceptions or {}
    root = package_dir.parent
    problems, used, edges = [], set(), []
    known = {m for layer in layers for m in layer.members}
    for name, path in module_names(package_dir).items():
        if member(name) not in known:
            where = path.relative_to(root)
            problems.append(f"{where}:1: {name} is in no layer: list it in dlnb/areas.py")
    for imp in find_imports(package_dir):
        key = (imp.importer, imp.imported)
        if key in exceptions:
            used.add(key)
            continue
        if imp.imported != DYNAMIC:
            edges.append(imp)
        rule = _rule(imp, layers)
        if rule:
            problems.append(f"{imp.where(root)}: {imp.importer} -> {imp.imported}: {rule}")
    for component in _cycles(edges):
        inside = [e for e in edges if e.importer in component and e.imported in component]
        lines = ", ".join(f"{e.where(root)} ({e.importer} -> {e.imported})" for e in inside)
        problems.append(f"import cycle between {' and '.join(component)}: {lines}")
    return problems, used


def test_dlnb_keeps_its_layers():
    problems, used = check_layers(ROOT / "dlnb", exceptions=EXCEPTIONS)
    assert problems == [], "the layers of dlnb/areas.py are broken:\n" + "\n".join(problems)
    stale = sorted(set(EXCEPTIONS) - used)
    assert stale == [], f"these exceptions no longer happen; remove them from EXCEPTIONS: {stale}"


# --- the checker itself, on small package trees written for the test ---------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `dlnb` under tmp_path holding `files` (path -> source)."""
    for rel, source in files.items():
        path = tmp_path / "dlnb" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path / "dlnb"


CLEAN = {
    "__init__.py": "import importlib\nfrom dlnb import areas\nimportlib.import_module(x)\n",
    "areas.py": "",
    "runtime.py": "import os\n",
    "recording.py": "from dlnb.runtime import show\n",
    "data/__init__.py": "from dlnb.data.loaders import make_loaders\n",
    "data/loaders.py": "from . import registry\nfrom ..runtime import seed\n",
    "data/registry.py": "from dlnb import areas, runtime\n",
    "train/__init__.py": "",
    "train/loop.py": "from dlnb.data import make_loaders\nfrom dlnb.data.registry import load\n",
    "vision/__init__.py": "",
    "vision/models.py": "def f():\n    from dlnb.train.loop import fit\n",
    "lifecycle/__init__.py": "from dlnb.vision import models\nfrom dlnb.train import loop\n",
}


def test_the_checker_passes_a_clean_tree(tmp_path):
    package = _tree(tmp_path, CLEAN)
    assert check_layers(package) == ([], set())
    edges = {(i.importer, i.imported) for i in find_imports(package)}
    assert ("dlnb.data.loaders", "dlnb.data.registry") in edges  # `from . import registry`
    assert ("dlnb.data.loaders", "dlnb.runtime") in edges  # `from ..runtime import seed`
    assert ("dlnb.train.loop", "dlnb.data") in edges  # a name from the package's __init__
    assert ("dlnb.vision.models", "dlnb.train.loop") in edges  # inside a function


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        ("data/loaders.py", "from dlnb.lifecycle import x\n", "higher layer"),
        ("data/loaders.py", "def f():\n    from ..lifecycle import x\n", "higher layer"),
        (
            "data/loaders.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dlnb.lifecycle.x\n",
            "higher layer",
        ),
        ("train/loop.py", "import dlnb\n", "higher layer"),
        ("train/loop.py", "from dlnb import __version__\n", "higher layer"),
        ("vision/models.py", "from dlnb.text import x\n", "another area"),
        ("data/registry.py", "import importlib\nimportlib.import_module(name)\n", "computed"),
        ("data/loaders.py", "import importlib\nimportlib.import_module('dlnb.train')\n", "higher"),
        ("extra.py", "", "in no layer"),
    ],
)
def test_the_checker_fails_a_planted_import(tmp_path, path, source, rule):
    files = {**CLEAN, "text/__init__.py": "", "text/x.py": "", "lifecycle/x.py": ""}
    files[path] = files.get(path, "") + source
    problems, _ = check_layers(_tree(tmp_path, files))
    assert len(problems) == 1 and rule in problems[0], problems
    assert problems[0].startswith(f"{Path('dlnb') / path}:")


def test_the_checker_finds_a_cycle_and_names_each_import(tmp_path):
    files = {**CLEAN, "data/registry.py": "from dlnb.data import loaders\n"}
    problems, _ = check_layers(_tree(tmp_path, files))
    assert len(problems) == 1, problems
    assert "import cycle between dlnb.data.loaders and dlnb.data.registry" in problems[0]
    assert f"{Path('dlnb/data/registry.py')}:1" in problems[0]
    assert f"{Path('dlnb/data/loaders.py')}:1" in problems[0]


def test_an_exception_allows_one_import_and_is_reported_used(tmp_path):
    files = {**CLEAN, "data/registry.py": "import importlib\nimportlib.import_module(name)\n"}
    package = _tree(tmp_path, files)
    allowed = {("dlnb.data.registry", DYNAMIC): "catalogs by name"}
    assert check_layers(package, exceptions=allowed) == ([], set(allowed))
