"""Repository checks: the committed curriculum is clean, and each kind of violation is caught."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
import yaml

from nbs_ci.checks import check_repo, manifest_sync_problems, notebook_problems, parameter_problems
from nbs_ci.manifest import ROOT

PARAMS = 'PROFILE = "smoke"  # or "full"\nDEVICE = "auto"\nSEED = 0\nSIZES = (64, 128)\nLR: float = 1e-3\nNEG = -1'


def write(
    path,
    parameters: str | None = PARAMS,
    extra_tagged: bool = False,
    outputs: bool = False,
    count: int | None = None,
) -> None:
    """A notebook: title, parameters cell (unless None), a derived-values cell."""
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_markdown_cell("# title")]
    for source in [parameters] + (["EXTRA = 1"] if extra_tagged else []):
        if source is not None:
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata["tags"] = ["parameters"]
            cells.append(cell)
    body = nbformat.v4.new_code_cell(
        'SMOKE = PROFILE == "smoke"\nprint(SMOKE)', execution_count=count
    )
    if outputs:
        body.outputs = [nbformat.v4.new_output("stream", name="stdout", text="True\n")]
    nb.cells = cells + [body]
    nbformat.write(nb, path)


def test_committed_notebooks_and_manifest_are_clean():
    problems = check_repo()
    assert problems == [], "\n".join(problems)


def test_a_clean_notebook_has_no_problems(tmp_path):
    write(tmp_path / "a.ipynb")
    assert notebook_problems(tmp_path / "a.ipynb") == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"outputs": True}, "cells [2] have outputs"),
        ({"count": 3}, "cells [2] have execution counts"),
        ({"parameters": None}, "exactly one code cell tagged `parameters`, found 0"),
        ({"extra_tagged": True}, "exactly one code cell tagged `parameters`, found 2"),
        ({"parameters": 'PROFILE = "smoke"\nEPOCHS = 2 * 3'}, "`EPOCHS = 2 * 3` computes a value"),
        ({"parameters": 'PROFILE = "smoke"\nN = len([1])'}, "`N = len([1])` computes a value"),
        (
            {"parameters": 'import os\nPROFILE = "smoke"'},
            "only `NAME = literal` assignments are allowed, found `import os`",
        ),
        ({"parameters": 'PROFILE = "smoke"\na, b = 1, 2'}, "found `a, b = (1, 2)`"),
        ({"parameters": 'PROFILE = "smoke"\nprint(PROFILE)'}, "found `print(PROFILE)`"),
        ({"parameters": 'DEVICE = "auto"'}, 'has no `PROFILE = "smoke"` assignment'),
        ({"parameters": 'PROFILE = "smoke'}, "is not valid Python"),
    ],
)
def test_each_violation_is_caught(tmp_path, kwargs, expected):
    write(tmp_path / "bad.ipynb", **kwargs)
    problems = notebook_problems(tmp_path / "bad.ipynb")
    assert (
        len(problems) == 1 and problems[0].startswith("bad.ipynb: ") and expected in problems[0]
    ), problems


def test_parameter_problems_accepts_literals_of_every_kind():
    assert parameter_problems(PARAMS + '\nNAMES = ["a", "b"]\nOPTS = {"x": None, "y": True}') == []


def test_an_unreadable_notebook_is_reported(tmp_path):
    (tmp_path / "broken.ipynb").write_text("{not json")
    (problem,) = notebook_problems(tmp_path / "broken.ipynb")
    assert problem.startswith("broken.ipynb: cannot be read as a notebook")


def test_manifest_and_notebooks_folder_must_agree(tmp_path):
    write(tmp_path / "listed.ipynb")
    write(tmp_path / "orphan.ipynb")
    manifest = tmp_path / "manifest.yaml"
    budget = {"smoke": 10, "full": 10}
    manifest.write_text(
        yaml.safe_dump(
            {
                "notebooks": [
                    {"name": "listed", "budget_s": budget},
                    {"name": "ghost", "budget_s": budget},
                ]
            }
        )
    )
    folder = tmp_path.name
    assert manifest_sync_problems(manifest, tmp_path) == [
        f"{folder}/orphan.ipynb is not in manifest.yaml; add an entry for it",
        f"manifest.yaml lists 'ghost' but {folder}/ghost.ipynb does not exist",
    ]
    assert len(check_repo(manifest, tmp_path)) == 2, "a missing notebook is reported once"


@pytest.mark.slow
def test_check_command_exits_non_zero_on_a_violation(tmp_path):
    write(tmp_path / "a.ipynb", outputs=True)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        yaml.safe_dump({"notebooks": [{"name": "a", "budget_s": {"smoke": 1, "full": 1}}]})
    )
    cmd = [
        sys.executable,
        "-m",
        "nbs_ci",
        "check",
        "--manifest",
        str(manifest),
        "--notebooks",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "a.ipynb: cells [2] have outputs" in done.stdout, (
        done.stdout + done.stderr
    )
    write(tmp_path / "a.ipynb")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_notebook_uses_the_projects_kernel():
    # Issue 16 item 4: notebooks saved with `python3` start whatever Python a system Jupyter has.
    import json
    import re

    makefile = (ROOT / "Makefile").read_text()
    (name,) = re.findall(r"ipykernel install .*--name (\S+)", makefile)
    specs = {
        p.name: json.loads(p.read_text())["metadata"].get("kernelspec", {})
        for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
    }
    assert specs, "no notebooks found"
    wrong = {n: s.get("name") for n, s in specs.items() if s.get("name") != name}
    assert not wrong, f"kernelspec must be {name!r} (the kernel `make setup` installs): {wrong}"
    assert {s.get("display_name") for s in specs.values()} == {"Python (dlnb)"}
