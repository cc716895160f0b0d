"""The notebook runner end to end, on throwaway notebooks: each outcome is reported as it happened."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import sys
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml

import nbs_ci
from nbs_ci import runner, tracking
from nbs_ci.__main__ import main
from nbs_ci.child import unfinished_cell
from nbs_ci.manifest import MANIFEST, PROFILES, Entry, Gate, ManifestError, load_manifest
from nbs_ci.provenance import provenance
from nbs_ci.references import WIDTH, format_references, parse_references, references_path
from nbs_ci.report import changes, render
from nbs_ci.results import NotebookResult, RunSummary
from nbs_ci.runner import INLINE_BACKEND, RecordsError, cuda_available, ensure_kernel, read_records

RECORD = "from dlnb.recording import record\n"
NOTEBOOKS = {
    # name: (cells after the parameters cell, manifest entry overrides)
    "ok": (
        [
            "import os, time\nfrom pathlib import Path\nimport numpy as np\n" + RECORD,
            "block = np.ones(300 * 2**20 // 8)  # ~300 MB, held while the runner samples RSS\ntime.sleep(1)",
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
            "record('accuracy', 0.9)\nrecord('epochs', EPOCHS)\nrecord('profile', PROFILE)\n"
            "record('cwd', str(Path.cwd()))\nrecord('headless', os.environ['DLNB_HEADLESS'])\n"
            "record('mpl', os.environ['MPLBACKEND'])\nrecord('hf_offline', os.environ['HF_HUB_OFFLINE'])",
        ],
        {
            "parameters": {"smoke": {"EPOCHS": 2}},
            "gates": {
                "smoke": [
                    {"metric": "accuracy", "op": ">=", "value": 0.5},
                    {"metric": "epochs", "op": "==", "value": 2},
                ]
            },
        },
    ),
    "boom": (
        [
            "x = 1",
            "raise RuntimeError('boom from the notebook')",
            RECORD + "record('never', 1)",
        ],
        {},
    ),
    # papermill lets sys.exit(0) pass; the runner must not
    "exits": (["import sys\nsys.exit(0)", RECORD + "record('after_exit', 1)"], {}),
    # a line dlnb.record did not write; the run goes on with the next notebook
    "garbled": (
        [
            "import os\n"
            + RECORD
            + "record('before', 1)\nopen(os.environ['DLNB_RECORD_FILE'], 'a').write('{oops\\n')"
        ],
        {},
    ),
    "sleepy": (
        [
            "import os, time\n" + RECORD + "record('kernel_pid', os.getpid())",
            # a daemon that leaves the kernel's process tree and session
            "import subprocess\nrecord('daemon_pid', int(subprocess.run('setsid sleep 300 "
            "> /dev/null 2>&1 & echo $!', shell=True, capture_output=True, text=True).stdout))",
            "time.sleep(600)  # far past the budget",
        ],
        {"budget_s": {"smoke": 15, "full": 15}},
    ),
    "low": (
        [RECORD + "record('accuracy', 0.1)"],
        {"gates": {"smoke": [{"metric": "accuracy", "op": ">=", "value": 0.5}]}},
    ),
    "silent": (
        ["y = 2 + 2"],
        {"gates": {"smoke": [{"metric": "accuracy", "op": ">=", "value": 0.5}]}},
    ),
    "needs_gpu": ([RECORD + "record('ran', True)"], {"accelerator": "gpu"}),
}
# The JSON shape of summary.json, in order (the previous night's summary is read back from it).
SUMMARY_KEYS = [
    *("profile", "started", "duration_s", "ok", "counts", "commit", "manifest", "kernel", "host"),
    *("tracking", "device", "versions", "datasets", "notebooks"),
]
NOTEBOOK_KEYS = [
    *("name", "accelerator", "budget_s", "status", "reason", "duration_s", "peak_rss_mb"),
    *("gpu_peak_mb", "metrics", "gates", "error", "notebook", "reference", "parameters"),
]


OK_REFERENCE = "Measured with `python -m nbs_ci run`: " + "; ".join(["accuracy 0.9 every time"] * 6)


def write_notebook(
    path: Path, cells: list[str], parameters: str = 'PROFILE = "smoke"\nEPOCHS = 1'
) -> None:
    """A small notebook: a parameters-tagged cell, then `cells`, stored without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# throwaway"),
        params,
        *(nbformat.v4.new_code_cell(c) for c in cells),
    ]
    nbformat.write(nb, path)


def entry(name: str, **overrides) -> dict:
    """A manifest entry with generous budgets (the machines running tests are shared and slow)."""
    return {
        "name": name,
        "accelerator": "cpu",
        "budget_s": {"smoke": 120, "full": 120},
        "parameters": {"smoke": {"PROFILE": "smoke"}},
        **overrides,
    }


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory) -> dict:
    """Throwaway notebooks, their manifest, and one smoke run over all of them through the CLI."""
    root = tmp_path_factory.mktemp("curriculum")
    nb_dir, out = root / "notebooks", root / "out"
    nb_dir.mkdir()
    for name, (cells, _) in NOTEBOOKS.items():
        write_notebook(nb_dir / f"{name}.ipynb", cells)
    manifest = root / "manifest.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {"notebooks": [entry(name, **over) for name, (_, over) in NOTEBOOKS.items()]},
            sort_keys=False,
        )
    )
    references_path(manifest).write_text(format_references({"ok": OK_REFERENCE}))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                "run",
                "--profile",
                "smoke",
                "--out",
                str(out),
                "--manifest",
                str(manifest),
                "--notebooks",
                str(nb_dir),
            ]
        )
    summary = json.loads((out / "summary.json").read_text())
    return {
        "html": (out / "report.html").read_text(),
        "root": root,
        "nb_dir": nb_dir,
        "out": out,
        "manifest": manifest,
        "summary": summary,
        "by_name": {nb["name"]: nb for nb in summary["notebooks"]},
        "exit_code": code,
        "printed": printed.getvalue().splitlines(),
        "hf_offline": os.environ.get("HF_HUB_OFFLINE", "1"),
    }


@pytest.mark.slow
def test_passing_notebook_reports_metrics_gates_memory_and_environment(curriculum):
    nb = curriculum["by_name"]["ok"]
    assert nb["status"] == "passed", nb
    assert nb["metrics"]["accuracy"] == 0.9
    assert nb["metrics"]["epochs"] == 2, "the manifest's smoke parameters must be injected"
    assert nb["metrics"]["profile"] == "smoke"
    assert Path(nb["metrics"]["cwd"]) == curriculum["nb_dir"].resolve()
    assert (nb["metrics"]["headless"], nb["metrics"]["mpl"]) == ("1", INLINE_BACKEND)
    assert nb["metrics"]["hf_offline"] == curriculum["hf_offline"], "1 unless the user set it"
    assert [g["passed"] for g in nb["gates"]] == [True, True]
    assert nb["peak_rss_mb"] > 300, "the kernel held a 300 MB array; the RSS sampler must see it"
    assert 1 < nb["duration_s"] < 120
    assert nb["error"] is None
    assert nb["reference"] == OK_REFERENCE, "read from references.md beside the manifest"
    assert {n["reference"] for n in curriculum["summary"]["notebooks"] if n["name"] != "ok"} == {""}
    executed = nbformat.read(curriculum["out"] / "ok.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        "figures are kept in the executed notebook"
    )
    assert any(
        "**recorded** `accuracy = 0.9`" in o.get("data", {}).get("text/markdown", "")
        for o in outputs
    )


@pytest.mark.slow
def test_raising_notebook_reports_failing_cell_and_traceback(curriculum):
    nb = curriculum["by_name"]["boom"]
    assert nb["status"] == "failed"
    err = nb["error"]
    assert (err["ename"], err["evalue"]) == ("RuntimeError", "boom from the notebook")
    assert err["source"] == "raise RuntimeError('boom from the notebook')"
    assert "RuntimeError" in err["traceback"] and "\x1b[" not in err["traceback"]
    assert nb["metrics"] == {}, "cells after the failure must not have run"
    assert (curriculum["out"] / "boom.ipynb").exists(), (
        "the executed notebook is kept for debugging"
    )


@pytest.mark.slow
def test_hanging_notebook_is_killed_with_its_kernel(curriculum):
    nb = curriculum["by_name"]["sleepy"]
    assert nb["status"] == "timed_out"
    assert 15 <= nb["duration_s"] < 45
    assert "time.sleep(600)" in nb["error"]["source"], "the report names the cell that hung"
    for pid in (nb["metrics"]["kernel_pid"], nb["metrics"]["daemon_pid"]):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_a_notebook_that_exits_early_fails_naming_the_cell(curriculum):
    nb = curriculum["by_name"]["exits"]
    assert nb["status"] == "failed" and nb["metrics"] == {}
    assert (nb["error"]["ename"], nb["error"]["source"]) == (
        "SystemExit",
        "import sys\nsys.exit(0)",
    )
    assert "the cells after it never ran" in nb["reason"]


@pytest.mark.slow
def test_a_malformed_records_line_fails_that_notebook_and_the_run_goes_on(curriculum):
    nb = curriculum["by_name"]["garbled"]
    assert nb["status"] == "failed" and nb["error"]["kind"] == "records"
    assert (
        "garbled.records.jsonl, line 2: not a record" in nb["reason"] and "'{oops'" in nb["reason"]
    )
    names = list(curriculum["by_name"])
    assert names.index("low") > names.index("garbled")
    assert curriculum["by_name"]["low"]["status"] == "missed_gate", "later notebooks still ran"
    assert "line 2: not a record" in curriculum["html"]


@pytest.mark.slow
def test_missed_gate_and_missing_metric_are_reported(curriculum):
    low, silent = curriculum["by_name"]["low"], curriculum["by_name"]["silent"]
    assert low["status"] == "missed_gate"
    assert low["gates"][0] | {"reason": ""} == {
        "metric": "accuracy",
        "op": ">=",
        "threshold": 0.5,
        "actual": 0.1,
        "passed": False,
        "reason": "",
    }
    assert silent["status"] == "missed_gate"
    assert silent["metrics"] == {}
    assert silent["gates"][0]["passed"] is False and silent["gates"][0]["reason"].startswith(
        "missing"
    )


@pytest.mark.slow
def test_gpu_notebook_is_skipped_with_a_reason_without_cuda(curriculum):
    nb = curriculum["by_name"]["needs_gpu"]
    if cuda_available():
        assert nb["status"] == "passed" and nb["metrics"] == {"ran": True}
    else:
        assert nb["status"] == "skipped"
        assert "CUDA" in nb["reason"]
        assert not (curriculum["out"] / "needs_gpu.ipynb").exists()


@pytest.mark.slow
def test_summary_report_and_exit_status(curriculum):
    out, summary = curriculum["out"], curriculum["summary"]
    assert curriculum["exit_code"] == 1 and summary["ok"] is False
    assert summary["counts"] == {
        "passed": 1 + cuda_available(),
        "failed": 3,
        "timed_out": 1,
        "missed_gate": 2,
        "skipped": 0 if cuda_available() else 1,
    }
    assert summary["versions"]["papermill"] and summary["profile"] == "smoke"
    assert list(summary) == SUMMARY_KEYS
    for nb in summary["notebooks"]:
        run = nb["status"] != "skipped"
        assert list(nb) == (NOTEBOOK_KEYS if run else NOTEBOOK_KEYS[:-1]), nb["name"]
    assert "mnist" in summary["datasets"] or "error" in summary["datasets"]
    html = curriculum["html"]
    for text in (
        "boom from the notebook",
        "raise RuntimeError(&#x27;boom from the notebook&#x27;)",
        "time.sleep(600)",
        "missing: the notebook did not record",
        "timed_out",
        "data:image/png;base64,",
        "Package versions",
        "Datasets",
        "no previous run",
    ):
        assert text in html, text
    assert all(name in html for name in NOTEBOOKS)
    assert curriculum["printed"][-1] == f"report: {out / 'report.html'}"
    for name in ("ok", "boom", "exits", "garbled", "sleepy", "low", "silent"):
        assert (out / f"{name}.ipynb").exists(), name


@pytest.mark.slow
def test_rerun_keeps_previous_summary_and_compares(curriculum):
    c = curriculum
    summary = nbs_ci.run(
        "smoke",
        only=["needs_gpu"],
        out=c["out"],
        manifest=c["manifest"],
        notebooks_dir=c["nb_dir"],
        log=lambda line: None,
    )
    assert summary.ok is True, "a skipped notebook is not a failure"
    assert [type(nb) for nb in summary.notebooks] == [NotebookResult]
    written = json.loads((c["out"] / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary.to_json(), default=str))
    previous = json.loads((c["out"] / "summary.previous.json").read_text())
    assert previous["started"] == c["summary"]["started"]
    assert previous["notebooks"] == c["summary"]["notebooks"]
    assert [
        nb["name"] for nb in json.loads((c["out"] / "summary.json").read_text())["notebooks"]
    ] == ["needs_gpu"]
    assert "compared with the run of" in (c["out"] / "report.html").read_text()


@pytest.mark.slow
def test_the_run_logs_each_notebook_to_mlflow_beside_the_output_folder(curriculum):
    import mlflow

    store = curriculum["root"] / "mlflow"
    assert curriculum["summary"]["tracking"] == {
        "store": str(store),
        "experiment": "smoke",
        "runs": len(NOTEBOOKS),
    }
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(NOTEBOOKS) <= set(runs)
    ok, boom, low = runs["ok"], runs["boom"], runs["low"]
    assert ok.info.status == "FINISHED" and boom.info.status == low.info.status == "FAILED"
    assert ok.data.metrics["accuracy"] == 0.9 and ok.data.metrics["epochs"] == 2
    assert ok.data.metrics["gate/accuracy"] == 1.0 and ok.data.metrics["gates_passed"] == 2
    assert low.data.metrics["gate/accuracy"] == 0.0 and low.data.tags["status"] == "missed_gate"
    assert ok.data.metrics["runner/peak_rss_mb"] > 300 and ok.data.metrics["runner/duration_s"] > 1
    assert ok.data.tags["metric.profile"] == "smoke", "a recorded string is a tag"
    assert ok.data.params["EPOCHS"] == "2" and ok.data.params["profile"] == "smoke"
    assert ok.data.tags["git_commit"] == (curriculum["summary"]["commit"] or "unknown")
    assert "MLflow store" in curriculum["html"] and "make mlflow" in curriculum["html"]


def test_notebook_record_turns_results_into_params_metrics_and_tags():
    nb = NotebookResult(
        name="n",
        status="passed",
        duration_s=3.5,
        peak_rss_mb=100.0,
        metrics={"acc": 0.9, "retrained": True, "label": "cat", "bad": float("nan")},
        gates=[{"metric": "acc", "passed": True}, {"metric": "retrained", "passed": False}],
        parameters={"PROFILE": "smoke", "SEED": 1},
    )
    found = tracking.notebook_record(nb, RunSummary(profile="smoke", commit="abc"))
    assert found["metrics"] == {
        "acc": 0.9,
        "retrained": 1.0,
        "runner/duration_s": 3.5,
        "runner/peak_rss_mb": 100.0,
        "gate/acc": 1.0,
        "gate/retrained": 0.0,
        "gates_passed": 1.0,
        "gates_total": 2.0,
    }
    assert found["params"] == {"profile": "smoke", "notebook": "n", "budget_s": "None"} | {
        "PROFILE": "smoke",
        "SEED": "1",
    }
    assert (found["tags"]["metric.label"], found["tags"]["metric.bad"]) == ("cat", "nan")
    assert found["tags"]["git_commit"] == found["tags"]["mlflow.source.git.commit"] == "abc"


def _skipped_run(tmp_path, monkeypatch, **kwargs) -> RunSummary:
    """A fast run (one GPU notebook, skipped without CUDA) into tmp_path/out."""
    write_notebook(tmp_path / "g.ipynb", [])
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"notebooks": [entry("g", accelerator="gpu")]}))
    monkeypatch.setattr(runner, "cuda_available", lambda: False)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "kernel-dir")
    return nbs_ci.run(
        "smoke", out=tmp_path / "out", manifest=manifest, notebooks_dir=tmp_path, **kwargs
    )


def test_tonights_run_is_logged_beside_last_nights(tmp_path, monkeypatch, capfd):
    import mlflow

    for _ in range(2):
        summary = _skipped_run(tmp_path, monkeypatch, log=lambda line: None)
    assert "INFO" not in capfd.readouterr().err, "creating the store is quiet"
    assert summary.tracking == {"store": str(tmp_path / "mlflow"), "experiment": "smoke", "runs": 1}
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert [r.info.run_name for r in runs] == ["g", "g"]
    assert {r.data.tags["status"] for r in runs} == {"skipped"}


def test_a_broken_mlflow_store_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    lines: list[str] = []
    summary = _skipped_run(
        tmp_path, monkeypatch, log=lines.append, mlflow_store=tmp_path / "not-a-folder"
    )
    assert summary.ok is True
    assert "error" in summary.tracking and "runs" not in summary.tracking
    assert any(line.startswith("warning: not logged to MLflow (") for line in lines)
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["tracking"]["error"] == summary.tracking["error"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Warning: not logged to the MLflow store" in html and "not-a-folder" in html
    assert not (tmp_path / "mlflow").exists(), "no store beside the run when one is given"


def test_mlflow_off_logs_nothing(tmp_path, monkeypatch):
    summary = _skipped_run(tmp_path, monkeypatch, log=lambda line: None, mlflow_store="off")
    assert summary.tracking == {} and not (tmp_path / "mlflow").exists()
    assert "tracking" not in json.loads((tmp_path / "out" / "summary.json").read_text())
    cli = ["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--mlflow"]
    cli += ["off", "--manifest", str(tmp_path / "manifest.yaml"), "--notebooks", str(tmp_path)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(cli) == 0
    assert not (tmp_path / "mlflow").exists(), "the CLI passes --mlflow on"
    assert "Not logged to MLflow" in (tmp_path / "out" / "report.html").read_text()


def test_cli_rejects_unknown_only_name_before_running_anything(tmp_path, capsys):
    write_notebook(tmp_path / "a.ipynb", [])
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({"notebooks": [entry("a")]}))
    code = main(
        [
            "run",
            "--profile",
            "smoke",
            "--only",
            "nope",
            "--manifest",
            str(tmp_path / "manifest.yaml"),
            "--notebooks",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "['nope']" in err and "known notebooks: ['a']" in err
    assert not (tmp_path / "out").exists()


def test_read_records_keeps_the_last_value_and_the_highest_gpu_peak(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"name": "acc", "value": 0.5, "gpu_peak_bytes": 300}\n\n'
        '{"name": "acc", "value": 0.7, "gpu_peak_bytes": 200}\n{"name": "tag", "value": "x"}\n'
    )
    assert read_records(path) == ({"acc": 0.7, "tag": "x"}, 300)
    assert read_records(tmp_path / "none.jsonl") == ({}, None)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{oops", "JSONDecodeError"),
        ("[1, 2]", "TypeError"),
        ('{"value": 1}', "KeyError"),
        ('{"name": "m", "value": 1, "gpu_peak_bytes": "lots"}', "TypeError"),
    ],
)
def test_read_records_names_the_file_and_line_of_a_malformed_record(tmp_path, line, problem):
    path = tmp_path / "r.jsonl"
    path.write_text(f'{{"name": "acc", "value": 0.5}}\n\n{line}\n')
    with pytest.raises(RecordsError, match=rf"r\.jsonl, line 3: not a record \({problem}"):
        read_records(path)


def test_unfinished_cell_finds_the_cell_that_stopped_the_notebook(tmp_path):
    path = tmp_path / "executed.ipynb"
    write_notebook(path, ["import sys\nsys.exit(0)", "x = 1"])
    nb = nbformat.read(path, as_version=4)
    for cell, status in zip(nb.cells, ["completed", "completed", "failed", "pending"], strict=True):
        cell.metadata["papermill"] = {"status": status}
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="SystemExit", evalue="0")]
    nbformat.write(nb, path)
    stopped = unfinished_cell(str(path))
    assert stopped is not None
    assert (stopped["cell_index"], stopped["ename"]) == (2, "SystemExit")
    assert "cell 2 ended failed (SystemExit: 0)" in stopped["evalue"]
    for cell in nb.cells:
        cell.metadata["papermill"] = {"status": "completed"}
    nbformat.write(nb, path)
    assert unfinished_cell(str(path)) is None, "a notebook that ends normally passes"


def test_supervise_kills_a_daemon_that_left_the_process_tree(tmp_path):
    pid_file = tmp_path / "daemon.pid"
    # the child starts a daemon in its own session whose parent exits at once (reparented to
    # init), then hangs past its budget
    script = (
        "import subprocess, time\n"
        f"subprocess.run('setsid sleep 300 > /dev/null 2>&1 & echo $! > {pid_file}', shell=True)\n"
        "time.sleep(300)"
    )
    done = runner._supervise(
        [sys.executable, "-c", script], dict(os.environ), tmp_path / "log", budget_s=2
    )
    pid = int(pid_file.read_text())
    assert done.timed_out
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_project_kernel_runs_this_python():
    spec = json.loads((Path(ensure_kernel()) / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["display_name"] == "Python (dlnb)"


def test_changes_reports_deltas_of_durations_and_metrics():
    now = RunSummary.from_json(
        {
            "notebooks": [
                {"name": "a", "duration_s": 12.0, "metrics": {"acc": 0.9, "tag": "x"}},
                {"name": "new", "duration_s": 1.0, "metrics": {}},
            ]
        }
    )
    before = RunSummary.from_json(
        {
            "notebooks": [
                {
                    "name": "a",
                    "status": "failed",
                    "duration_s": 10.0,
                    "metrics": {"acc": 0.8, "tag": "y", "gone": 1},
                }
            ]
        }
    )
    diff = changes(now, before)
    assert set(diff) == {"a"}
    assert diff["a"]["duration_delta"] == pytest.approx(2.0)
    assert diff["a"]["metrics"]["acc"]["delta"] == pytest.approx(0.1)
    assert diff["a"]["metrics"]["tag"] == {"previous": "y", "delta": None}
    assert diff["a"]["status"] == "failed"
    assert changes(now, None) == {}


def old_summary() -> dict:
    """A summary.json as the runner wrote it before results were typed: one run, one skipped."""
    gate = {"metric": "acc", "op": ">=", "threshold": 0.5, "actual": 0.8, "passed": True}
    ran = {
        "name": "a",
        "accelerator": "cpu",
        "budget_s": 120.0,
        "status": "passed",
        "reason": "",
        "duration_s": 3.5,
        "peak_rss_mb": 310.2,
        "gpu_peak_mb": None,
        "metrics": {"acc": 0.8},
        "gates": [gate | {"reason": ""}],
        "error": None,
        "notebook": "a.ipynb",
        "reference": "paper",
        "parameters": {"PROFILE": "smoke"},
    }
    skipped = {k: v for k, v in ran.items() if k != "parameters"}
    skipped.update(name="g", accelerator="gpu", status="skipped", reason="needs a CUDA GPU")
    skipped.update(duration_s=None, peak_rss_mb=None, metrics={}, gates=[], notebook=None)
    return {
        "profile": "smoke",
        "started": "2024-05-01T02:00:00+00:00",
        "duration_s": 4.0,
        "ok": True,
        "counts": {"passed": 1, "failed": 0, "timed_out": 0, "missed_gate": 0, "skipped": 1},
        "commit": "abc1234",
        "manifest": "nbs_ci/manifest.yaml",
        "kernel": "kernels/dlnb",
        "host": {"hostname": "runner", "platform": "Linux", "cpu_count": 2, "memory_gb": 8.0},
        "device": {"torch": "2.3.0", "devices": [{"name": "GPU 0"}]},
        "versions": {"python": "3.11.9", "papermill": "2.6.0"},
        "datasets": {"mnist": {"checksums": {"x": "00ff"}, "pinned": True, "cached": False}},
        "notebooks": [ran, skipped],
    }


def test_a_summary_reads_back_into_types_with_the_same_json_shape():
    raw = old_summary()
    summary = RunSummary.from_json(raw)
    ran, skipped = summary.notebooks
    assert isinstance(ran, NotebookResult) and ran.metrics == {"acc": 0.8}
    assert (ran.parameters, skipped.parameters) == ({"PROFILE": "smoke"}, None)
    assert summary.provenance == {k: raw[k] for k in ("device", "versions", "datasets")}
    assert json.dumps(summary.to_json()) == json.dumps(raw), "same keys, values and order"
    assert list(summary.to_json()) == [k for k in SUMMARY_KEYS if k != "tracking"], "not logged"
    summary.tracking = {"store": "runs/mlflow", "experiment": "smoke", "runs": 2}
    assert list(summary.to_json()) == SUMMARY_KEYS
    assert RunSummary.from_json(summary.to_json()).tracking == summary.tracking
    assert list(ran.to_json()) == NOTEBOOK_KEYS and list(skipped.to_json()) == NOTEBOOK_KEYS[:-1]


def test_an_older_or_partial_summary_still_reads_back_and_is_compared():
    raw = old_summary()
    raw["retired_key"] = "kept as provenance"
    raw["notebooks"][0] = {"name": "a", "status": "failed", "duration_s": 2.0, "extra": 1}
    del raw["commit"], raw["started"]
    previous = RunSummary.from_json(raw)
    assert previous.commit is None and previous.provenance["retired_key"] == "kept as provenance"
    old = previous.notebooks[0]
    assert (old.status, old.duration_s, old.metrics, old.gates, old.error) == (
        "failed",
        2.0,
        {},
        [],
        None,
    )
    summary = RunSummary.from_json(old_summary())
    assert changes(summary, previous)["a"]["duration_delta"] == pytest.approx(1.5)
    html = render(summary, previous)
    assert "compared with the run of ? (commit unknown;" in html
    assert "GPU 0" in html and "00ff" in html, "provenance sections come from the summary"


def test_run_summary_counts_statuses_and_fails_on_any_failure():
    statuses = ["passed", "skipped", "missed_gate", "passed"]
    summary = RunSummary.of([NotebookResult(f"n{i}", status=s) for i, s in enumerate(statuses)])
    assert summary.counts == {
        "passed": 2,
        "failed": 0,
        "timed_out": 0,
        "missed_gate": 1,
        "skipped": 1,
    }
    assert summary.ok is False
    assert [nb.failed for nb in summary.notebooks] == [False, False, True, False]
    assert RunSummary.of([NotebookResult("a", status="skipped")]).ok is True


# --- provenance: the one hook that knows dlnb ------------------------------------------------------


def test_only_the_provenance_module_imports_dlnb():
    importers = set()
    for path in sorted(Path(nbs_ci.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "dlnb" or n.startswith("dlnb.") for n in names):
                importers.add(path.name)
    assert importers == {"provenance.py"}


def test_provenance_reports_device_versions_and_datasets():
    found = provenance()
    assert list(found) == ["device", "versions", "datasets"]
    assert "torch" in found["device"] or "error" in found["device"]
    assert found["versions"]["python"] and found["versions"]["papermill"]
    assert "mnist" in found["datasets"] or "error" in found["datasets"]
    assert set(found["datasets"].get("mnist", {})) <= {
        *("checksums", "pinned", "cached", "cache_file", "cache_sha256", "error"),
    }


def test_the_runner_writes_whatever_the_provenance_hook_returns(tmp_path, monkeypatch):
    write_notebook(tmp_path / "g.ipynb", [])
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"notebooks": [entry("g", accelerator="gpu")]}))
    monkeypatch.setattr(runner, "provenance", lambda: {"lab": {"bench": "7"}})
    monkeypatch.setattr(runner, "cuda_available", lambda: False)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "kernel-dir")
    out = tmp_path / "out"
    summary = nbs_ci.run(
        "smoke", out=out, manifest=manifest, notebooks_dir=tmp_path, log=lambda line: None
    )
    assert summary.provenance == {"lab": {"bench": "7"}}
    written = json.loads((out / "summary.json").read_text())
    assert list(written)[-2:] == ["lab", "notebooks"] and written["lab"] == {"bench": "7"}
    assert written["kernel"] == "kernel-dir" and written["notebooks"][0]["status"] == "skipped"
    assert "needs a CUDA GPU" in (out / "report.html").read_text()


# --- manifest validation (no kernels) --------------------------------------------------------------

BAD_MANIFEST = """\
notebooks:
  - name: a
    budget_s: {smoke: 10, full: 20}
    colour: blue
  - name: a
    budget_s: {smoke: 10, full: 20}
  - name: ghost
    budget_s: {smoke: 10, full: 20}
  - name: b
    budget_s: {smoke: 10, nightly: 20}
    gates:
      smoke:
        - {metric: acc, op: "=>", value: 0.5}
        - {metric: acc, op: ">=", value: high}
        - {metric: acc, op: ">=", value: 0.5, weight: 2}
  - name: c
    accelerator: tpu
"""


def test_manifest_lists_every_problem_with_its_line(tmp_path):
    for name in ("a", "b", "c"):
        write_notebook(tmp_path / f"{name}.ipynb", [])
    path = tmp_path / "manifest.yaml"
    path.write_text(BAD_MANIFEST)
    with pytest.raises(ManifestError) as info:
        load_manifest(path, tmp_path)
    problems = info.value.problems
    expected = [
        ("line 2 (entry 1, 'a')", "unknown key(s) ['colour']"),
        ("line 5 (entry 2, 'a')", "duplicate name 'a', first used on line 2"),
        ("line 7 (entry 3, 'ghost')", "ghost.ipynb does not exist"),
        ("line 9 (entry 4, 'b')", "unknown profile 'nightly'"),
        ("line 9 (entry 4, 'b')", "budget_s.full must be a positive number"),
        ("line 9 (entry 4, 'b') gates.smoke[0]", "bad gate op '=>'"),
        ("line 9 (entry 4, 'b') gates.smoke[1]", "needs a finite number, got 'high'"),
        ("line 9 (entry 4, 'b') gates.smoke[2]", "unknown gate key(s) ['weight']"),
        ("line 16 (entry 5, 'c')", "accelerator must be one of ['cpu', 'gpu'], got 'tpu'"),
        ("line 16 (entry 5, 'c')", "missing required key(s) ['budget_s']"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, what, problems)
    assert len(problems) == len(expected), problems
    assert str(path) in str(info.value)


def test_manifest_rejects_unknown_top_level_key_and_accepts_empty_list(tmp_path):
    path = tmp_path / "manifest.yaml"
    path.write_text("notebooks:\nprofiles: [smoke]\n")
    with pytest.raises(ManifestError, match="unknown top-level key 'profiles'"):
        load_manifest(path, tmp_path)
    path.write_text("# nothing yet\nnotebooks:\n")
    assert load_manifest(path, tmp_path).entries == ()


def test_the_shipped_manifest_restates_no_default():
    defaults = {f: Entry.__dataclass_fields__[f].default for f in ("accelerator",)}
    raw = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["notebooks"]
    restated = [
        f"{e['name']}: {key}: {e[key]!r}"
        for e in raw
        for key in defaults
        if e.get(key) == defaults[key]
    ]
    restated += [
        f"{e['name']}: parameters.{profile}.PROFILE: {profile}"
        for e in raw
        for profile, params in (e.get("parameters") or {}).items()
        if (params or {}).get("PROFILE") == profile
    ]
    restated += [
        f"{e['name']}: empty {key}"
        for e in raw
        for key in ("parameters", "gates")
        if e.get(key) == {}
    ]
    assert restated == []


def test_left_out_keys_take_the_defaults_the_manifest_used_to_restate(tmp_path):
    for name in ("short", "spelled_out"):
        write_notebook(tmp_path / f"{name}.ipynb", [])
    spelled_out = entry("spelled_out", parameters={p: {"PROFILE": p} for p in PROFILES})
    short = {
        "name": "short",
        "budget_s": spelled_out["budget_s"],
        "parameters": {"smoke": {"N": 2}},
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"notebooks": [short, spelled_out]}))
    a, b = load_manifest(path, tmp_path).entries
    assert (a.accelerator, b.accelerator) == ("cpu", "cpu")
    assert a.run_parameters("smoke") == {"PROFILE": "smoke", "N": 2}
    assert a.run_parameters("full") == {"PROFILE": "full"}
    assert [b.run_parameters(p) for p in PROFILES] == [{"PROFILE": p} for p in PROFILES]
    override = Entry("x", {"smoke": 1.0, "full": 1.0}, parameters={"full": {"PROFILE": "smoke"}})
    assert override.run_parameters("full") == {"PROFILE": "smoke"}, "parameters win"


def test_every_shipped_entry_runs_each_profile_under_its_name():
    entries = load_manifest().entries
    assert entries
    for e in entries:
        for profile in PROFILES:
            assert e.run_parameters(profile)["PROFILE"] == profile, e.name


def test_manifest_parses_a_valid_entry(tmp_path):
    write_notebook(tmp_path / "01_x.ipynb", [])
    path = tmp_path / "manifest.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "notebooks": [
                    entry("01_x", gates={"full": [{"metric": "acc", "op": ">", "value": 0.99}]})
                ]
            }
        )
    )
    (tmp_path / "references.md").write_text("# Intro\n\n## 01_x\n\nfrom a\npaper\n\nand a run\n")
    loaded = load_manifest(path, tmp_path)
    (e,) = loaded.entries
    assert (e.name, e.accelerator, e.budget_s) == ("01_x", "cpu", {"smoke": 120, "full": 120})
    assert e.gates == {"full": (Gate("acc", ">", 0.99),)}
    assert e.parameters == {"smoke": {"PROFILE": "smoke"}}
    assert loaded.reference("01_x") == "from a paper\n\nand a run"
    assert loaded.reference("02_none") == ""


def _one_entry_manifest(tmp_path: Path, **overrides) -> Path:
    write_notebook(tmp_path / "01_x.ipynb", [])
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"notebooks": [entry("01_x", **overrides)]}))
    return path


def test_a_reference_in_the_manifest_says_to_move_it_to_references_md(tmp_path):
    path = _one_entry_manifest(tmp_path, reference="paper")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, tmp_path)
    (problem,) = info.value.problems
    assert "'01_x'" in problem and "references.md" in problem and "## NAME" in problem


def test_references_md_may_name_only_notebooks_of_the_manifest(tmp_path):
    path = _one_entry_manifest(tmp_path)
    references_path(path).write_text("## 01_x\n\nmeasured\n\n## 01_typo\n\nmeasured too\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, tmp_path)
    (problem,) = info.value.problems
    assert str(references_path(path)) in problem and "'01_typo' names no notebook" in problem


def test_references_md_rejects_repeated_and_empty_sections(tmp_path):
    found, problems = parse_references("intro\n## a\n\none\n## b\n\n## a\ntwo\n")
    assert found == {"a": "one two", "b": ""}
    assert problems == ["line 7: section 'a' repeats line 2", "line 5: section 'b' has no text"]
    path = _one_entry_manifest(tmp_path)
    references_path(path).write_text("## 01_x\n")
    with pytest.raises(ManifestError, match="section '01_x' has no text"):
        load_manifest(path, tmp_path)


def test_format_references_wraps_and_reads_back():
    refs = {"01_x": "word " * 60 + "end", "02_y": "first paragraph\n\nsecond"}
    text = format_references(refs, intro="# Title")
    assert text.startswith("# Title\n\n## 01_x\n\n")
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert len(text.splitlines()) > 6, "the long text is wrapped over several lines"
    assert parse_references(text) == (refs, [])
    with pytest.raises(ValueError, match="02_y"):
        format_references({"02_y": "a\n\n## heading in the text"})


def test_the_shipped_references_are_wrapped_and_name_manifest_entries():
    path = references_path(MANIFEST)
    text = path.read_text(encoding="utf-8")
    long = [line for line in text.splitlines() if len(line) > WIDTH and " " in line]
    assert long == [], f"wrap {path.name} at {WIDTH} columns"
    loaded = load_manifest()  # also fails on a section naming no notebook of the manifest
    references, problems = parse_references(text)
    assert problems == [] and references == loaded.references
    assert set(references) <= {e.name for e in loaded.entries}


@pytest.mark.parametrize(
    ("op", "actual", "threshold", "passed"),
    [
        (">=", 0.5, 0.5, True),
        (">", 0.5, 0.5, False),
        ("<=", 3, 2.5, False),
        ("<", 2, 2.5, True),
        ("==", "lenet", "lenet", True),
        ("==", True, False, False),
    ],
)
def test_gate_comparisons(op, actual, threshold, passed):
    assert Gate("m", op, threshold).check({"m": actual})["passed"] is passed


def test_gate_on_a_string_with_an_order_op_fails_with_a_reason():
    result = Gate("m", ">=", 0.5).check({"m": "high"})
    assert result["passed"] is False and "not a number" in result["reason"]
