"""environment.yml (conda users) and pyproject.toml (pip users) must install the same things."""

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalise(r.name): r for r in map(Requirement, project["dependencies"])}


def environment_pip_lines() -> list[str]:
    path = ROOT / "environment.yml"
    assert path.exists(), "environment.yml is missing: conda users need it (see README)."
    env = yaml.safe_load(path.read_text())
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one `pip:` section."
    return [str(line).strip() for line in sections[0]]


def environment_requirements() -> dict[str, Requirement]:
    lines = [line for line in environment_pip_lines() if not line.startswith("-")]
    return {normalise(r.name): r for r in map(Requirement, lines)}


def test_environment_and_pyproject_name_the_same_dependencies():
    pip, env = set(pyproject_requirements()), set(environment_requirements())
    assert pip == env, (
        f"only in pyproject.toml: {sorted(pip - env)}; only in environment.yml: {sorted(env - pip)}"
    )


def test_environment_and_pyproject_ask_for_the_same_versions():
    pip, env = pyproject_requirements(), environment_requirements()
    differ = {
        n: (str(pip[n].specifier), str(env[n].specifier))
        for n in pip.keys() & env.keys()
        if pip[n].specifier != env[n].specifier
    }
    assert not differ, f"version specifiers differ (pyproject, environment): {differ}"


def test_environment_installs_this_package():
    assert any(re.match(r"-e\s+\.(\[.*\])?$", line) for line in environment_pip_lines())
