"""The package's shape is enforced, not remembered: style, types, layout, the public API."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlnb import areas

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dlnb"
AREAS = (*areas.SUBPACKAGES, *areas.LESSON_AREAS)  # every subpackage with a public surface
LINTED = ("dlnb", "nbs_ci", "tests", "benchmarks", "notebooks")  # the Makefile's LINTED
HEAVY = ("torch", "transformers", "captum", "xgboost", "onnxruntime", "sklearn", "pandas")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "format", "--check", *LINTED),
        ("ruff", "check", *LINTED),
        ("mypy",),
    ],
    ids=["ruff-format", "ruff-check", "mypy"],
)
def test_make_lint_is_clean(command):
    done = _run(*command)
    assert done.returncode == 0, (
        f"`python -m {' '.join(command)}` failed:\n{done.stdout}{done.stderr}"
    )


def test_importing_dlnb_is_lazy():
    code = (
        "import sys, json, dlnb; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_the_public_api_resolves_and_names_its_home():
    import dlnb

    expected = {"fit", "evaluate", "predict", "TrainConfig", "Callback", "EarlyStopping", "load"}
    expected |= {"make_loaders", "pick_device", "seed_everything", "doctor", "record"}
    assert expected <= set(dlnb.__all__)
    for name in dlnb.__all__:
        if name != "__version__":
            assert getattr(dlnb, name) is not None, name
    assert callable(dlnb.record) and dlnb.record.__module__ == "dlnb.recording"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dlnb.nothing  # noqa: B018


@pytest.mark.parametrize("area", AREAS)
def test_each_area_names_its_public_surface(area):
    package = importlib.import_module(f"dlnb.{area}")
    assert package.__all__, f"dlnb/{area}/__init__.py has no __all__"
    for name in package.__all__:
        assert hasattr(package, name), f"dlnb.{area}.__all__ names {name!r}, which is missing"
    # a function re-exported under a submodule's name would hide that submodule
    for module in (PACKAGE / area).glob("*.py"):
        if module.stem != "__init__":
            value = getattr(package, module.stem, None)
            assert value is None or type(value).__name__ == "module", f"dlnb.{area}.{module.stem}"


def test_modules_are_small():
    big = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}, f"split these modules (over {MAX_LINES} lines): {big}"


def test_the_top_level_is_a_small_core():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == sorted(["__init__.py", "__main__.py", *(f"{m}.py" for m in areas.CORE)])
    assert {"areas", "claims", "runtime", "recording"} <= set(areas.CORE)


def test_every_subpackage_is_listed_in_areas():
    found = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert found == {*areas.SUBPACKAGES, *areas.LESSON_AREAS, "scripts"}, (
        "list each subpackage in dlnb/areas.py (LESSON_AREAS for a lesson area)"
    )


def test_the_makefile_lints_what_the_lint_test_lints():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"LINTED := {' '.join(LINTED)}" in makefile


def test_every_module_has_its_test_file():
    missing = []
    for module in _modules():
        rel = module.relative_to(PACKAGE)
        if rel.parts[0] == "scripts":
            continue  # command-line scripts are run by tests of what they drive
        test = ROOT / "tests" / rel.parent / f"test_{rel.stem}.py"
        if not test.exists():
            missing.append(str(test.relative_to(ROOT)))
    assert missing == [], f"add tests mirroring the package: {missing}"


def test_nothing_reaches_into_the_repository():
    offenders = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if "Path(__file__)" in p.read_text() and ".parent.parent" in p.read_text()
    ]
    assert offenders == [], f"read package files with importlib.resources instead: {offenders}"


def _notebook_imports(path: Path) -> list[ast.stmt]:
    cells = json.loads(path.read_text())["cells"]
    found = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(
            line
            for line in "".join(cell["source"]).splitlines()
            if not line.lstrip().startswith(("%", "!"))
        )
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import) and any(a.name.startswith("dlnb") for a in node.names):
                found.append(node)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dlnb"):
                found.append(node)
    return found


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem
)
def test_notebooks_use_one_import_idiom(notebook):
    imports = _notebook_imports(notebook)
    assert imports, f"{notebook.name} does not use dlnb"
    for node in imports:
        assert isinstance(node, ast.ImportFrom) and node.module == "dlnb", (
            f"{notebook.name}: import the top-level names and area namespaces, "
            f"`from dlnb import fit, vision`, not {ast.unparse(node)!r}"
        )
    # the claims toolkit is the house's way to state a result: every notebook may use it
    modules = {
        a.name
        for node in imports
        for a in node.names
        if a.name in areas.NAMESPACES and a.name != "claims"
    }
    assert len(modules) <= 5, (
        f"{notebook.name} imports {len(modules)} dlnb modules: {sorted(modules)}"
    )
