"""Run manifest notebooks with papermill, one child process each; collect metrics, check gates.

`run("smoke")` executes every entry's smoke profile and writes, in the output folder, the
executed notebooks, `summary.json` and `report.html` (the previous summary is kept as
`summary.previous.json` and compared against).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil

from nbs_ci.manifest import NOTEBOOKS, PROFILES, ROOT, Entry, load_manifest
from nbs_ci.provenance import provenance
from nbs_ci.results import NotebookResult, RunSummary
from nbs_ci.tracking import default_store, track_summary

KERNEL = "dlnb"
POLL_S = 0.2
KERNEL_START_TIMEOUT_S = 120
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# Every process a notebook starts inherits this variable, also daemons that left its process tree.
RUN_TAG = "NBS_CI_RUN_TAG"


def ensure_kernel(name: str = KERNEL) -> str:
    """Make sure kernel spec `name` exists (install it for this Python if not); return its path."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager()
    if name not in specs.find_kernel_specs():
        cmd = [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--name",
            name,
            "--display-name",
            "Python (dlnb)",
        ]
        # Into this environment; a read-only one (a system Python in an image) gets a user kernel.
        done = subprocess.run([*cmd, "--sys-prefix"], capture_output=True, text=True)
        if done.returncode != 0:
            done = subprocess.run([*cmd, "--user"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"Could not register the Jupyter kernel {name!r} ({' '.join(cmd)}):\n"
                f"{done.stderr}\nInstall ipykernel in this environment and retry."
            )
    spec = specs.get_kernel_spec(name)
    if spec.argv and os.path.abspath(spec.argv[0]) != os.path.abspath(sys.executable):
        print(
            f"warning: kernel {name!r} ({spec.resource_dir}) runs {spec.argv[0]}, not this "
            f"Python ({sys.executable}); remove it with `jupyter kernelspec remove {name}` to let "
            "the runner register the right one.",
            file=sys.stderr,
        )
    return spec.resource_dir


def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _kill(procs) -> None:
    """SIGKILL every still-running process in `procs` and reap them."""
    alive = []
    for p in procs:
        try:
            p.kill()
            alive.append(p)
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)


@dataclass(frozen=True)
class Supervised:
    """How a supervised process ended: exit code, whether it was killed, time and peak RSS."""

    returncode: int
    timed_out: bool
    duration_s: float
    peak_rss_mb: float


def _tagged(tag: str) -> list[psutil.Process]:
    """This user's processes whose environment carries RUN_TAG=`tag` (those a run started)."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get(RUN_TAG) == tag:
                found.append(p)
    return found


def _supervise(cmd: list[str], env: dict, log_path: Path, budget_s: float) -> Supervised:
    """Run `cmd`, sampling the RSS of its descendants; past `budget_s` (or when it ends) kill
    the whole tree and every process it started, also those that left it (`setsid`, double fork)."""
    start = time.monotonic()
    tag = uuid.uuid4().hex
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**env, RUN_TAG: tag}, cwd=ROOT
        )
        child = psutil.Process(proc.pid)
        seen: dict[int, psutil.Process] = {}
        peak, timed_out = 0, False
        try:
            while proc.poll() is None:
                try:
                    descendants = child.children(recursive=True)
                except psutil.Error:
                    descendants = []
                rss = 0
                for p in descendants:
                    seen.setdefault(p.pid, p)
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
                if time.monotonic() - start > budget_s:
                    timed_out = True
                    break
                time.sleep(POLL_S)
        finally:  # past the budget, interrupted (Ctrl-C), or a kernel left behind by a crash
            with contextlib.suppress(psutil.Error):
                for p in child.children(recursive=True):
                    seen.setdefault(p.pid, p)
            if proc.poll() is None:
                proc.kill()
            _kill([*seen.values(), *_tagged(tag)])
            proc.wait()
    return Supervised(
        returncode=proc.returncode,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - start, 2),
        peak_rss_mb=round(peak / 2**20, 1),
    )


class RecordsError(ValueError):
    """A records file with a line that is not a `{"name": ..., "value": ...}` JSON object."""


def read_records(path: Path) -> tuple[dict, int | None]:
    """Metrics from a `dlnb.record` file (the last value of a name wins) and the GPU peak seen."""
    metrics: dict = {}
    gpu_peak: int | None = None
    if not path.exists():
        return metrics, gpu_peak
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                item = json.loads(line)
                metrics[item["name"]] = item["value"]
                if "gpu_peak_bytes" in item:
                    gpu_peak = max(gpu_peak or 0, item["gpu_peak_bytes"])
            except (ValueError, TypeError, KeyError) as e:
                raise RecordsError(
                    f"{path}, line {number}: not a record ({type(e).__name__}: {e}): {line[:120]!r}; "
                    "write records only with dlnb.record, not to DLNB_RECORD_FILE directly"
                ) from None
    return metrics, gpu_peak


def _running_cell(executed: Path) -> dict:
    """The cell papermill marked as running in a partly executed notebook (for a timeout)."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # killed while writing: nothing reliable to show
        return {}
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return {"cell_index": i, "source": cell.source}
    return {}


def _log_tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-chars:]


def run_notebook(
    entry: Entry,
    profile: str,
    notebooks_dir: Path,
    out: Path,
    kernel: str = KERNEL,
    has_cuda: bool = False,
    reference: str = "",
) -> NotebookResult:
    """Execute one entry's `profile` in a child process; return its result.

    `reference` (the entry's references.md text) is copied into the result as it is.
    """
    budget = entry.budget_s[profile]
    result = NotebookResult(
        name=entry.name,
        accelerator=entry.accelerator,
        budget_s=budget,
        notebook=f"{entry.name}.ipynb",
        reference=reference,
    )
    if entry.accelerator == "gpu" and not has_cuda:
        result.status, result.notebook = "skipped", None
        result.reason = "needs a CUDA GPU (accelerator: gpu) and this machine has none"
        return result

    executed, records, log = (
        out / f"{entry.name}{s}" for s in (".ipynb", ".records.jsonl", ".log")
    )
    for stale in (executed, records, log):
        stale.unlink(missing_ok=True)
    parameters = entry.run_parameters(profile)
    # Matplotlib's inline backend: headless, and figures still land in the executed notebook
    # (with "agg" the kernel would drop them).
    env = {
        **os.environ,
        "DLNB_HEADLESS": "1",
        "MPLBACKEND": INLINE_BACKEND,
        "DLNB_RECORD_FILE": str(records),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("DLNB_DATA", str(ROOT / "data" / "cache"))
    with tempfile.TemporaryDirectory(prefix="nbs_ci-") as tmp:
        job = {
            "input": str(entry.path(notebooks_dir)),
            "output": str(executed),
            "parameters": parameters,
            "kernel": kernel,
            "cwd": str(notebooks_dir),
            "start_timeout": KERNEL_START_TIMEOUT_S,
            "result": str(Path(tmp) / "result.json"),  # read back below
        }
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        proc = _supervise([sys.executable, "-m", "nbs_ci.child", str(job_path)], env, log, budget)
        result_path = Path(tmp) / "result.json"
        outcome = json.loads(result_path.read_text()) if result_path.exists() else None

    try:
        metrics, gpu_peak = read_records(records)
        bad_records = None
    except RecordsError as problem:
        metrics, gpu_peak, bad_records = {}, None, problem
    result.duration_s, result.peak_rss_mb = proc.duration_s, proc.peak_rss_mb
    result.metrics, result.parameters = metrics, parameters
    result.gpu_peak_mb = None if gpu_peak is None else round(gpu_peak / 2**20, 1)
    result.gates = [g.check(metrics) for g in entry.gates.get(profile, ())]
    if not executed.exists():
        result.notebook = None
    if proc.timed_out:
        result.status, result.reason = "timed_out", f"stopped after its {budget:g} s budget"
        result.error = {
            "kind": "timeout",
            "ename": "TimedOut",
            "traceback": "",
            "evalue": f"still running after the {profile} budget of {budget:g} s",
            "source": "",
            **_running_cell(executed),
        }
    elif bad_records is not None:
        result.status, result.reason = "failed", str(bad_records)
        result.error = {
            "kind": "records",
            "ename": "RecordsError",
            "evalue": str(bad_records),
            "source": "",
            "traceback": "",
        }
    elif outcome is None:
        result.status = "failed"
        result.reason = f"runner process exited with code {proc.returncode}"
        result.error = {
            "kind": "runner",
            "ename": "RunnerCrashed",
            "source": "",
            "evalue": f"the runner process exited with code {proc.returncode} "
            "without a result (killed for memory?)",
            "traceback": _log_tail(log),
        }
    elif not outcome["ok"]:
        e = outcome["error"]
        first_line = (
            str(e["evalue"]).strip().splitlines()[0][:200] if str(e["evalue"]).strip() else ""
        )
        result.status, result.reason, result.error = "failed", f"{e['ename']}: {first_line}", e
    elif not all(g["passed"] for g in result.gates):
        missed = [g for g in result.gates if not g["passed"]]
        result.status = "missed_gate"
        result.reason = "; ".join(
            f"{g['metric']} {g['op']} {g['threshold']!r}: {g['reason']}" for g in missed
        )
    else:
        result.status = "passed"
    return result


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _print_line(text: str) -> None:
    print(text, flush=True)


def run(
    profile: str,
    only: list[str] | None = None,
    out: Path | str | None = None,
    manifest: Path | str | None = None,
    notebooks_dir: Path | str | None = None,
    log: Callable[[str], None] = _print_line,
    mlflow_store: Path | str | None = None,
) -> RunSummary:
    """Run a profile over the manifest (or the `only` entries); write outputs; return the summary.

    Each notebook is also logged to the MLflow store `mlflow_store` (default: `mlflow/` beside
    `out`; "off" for none); a store that cannot be written is a warning, never a failure.
    """
    from nbs_ci.report import write_report

    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; use one of {list(PROFILES)}.")
    notebooks_dir = Path(notebooks_dir or NOTEBOOKS).resolve()
    loaded = load_manifest(manifest, notebooks_dir)
    entries = loaded.select(only)
    out = Path(out or ROOT / "runs" / profile).resolve()
    out.mkdir(parents=True, exist_ok=True)
    kernel_dir = ensure_kernel()
    has_cuda = cuda_available()
    started, t0 = datetime.now(timezone.utc), time.monotonic()

    results = []
    for i, entry in enumerate(entries, 1):
        log(
            f"[{i}/{len(entries)}] {entry.name} ({profile}, budget {entry.budget_s[profile]:g} s) ..."
        )
        reference = loaded.reference(entry.name)
        r = run_notebook(entry, profile, notebooks_dir, out, has_cuda=has_cuda, reference=reference)
        took = (
            ""
            if r.duration_s is None
            else f" in {r.duration_s:.1f} s, peak RSS {r.peak_rss_mb:.0f} MB"
        )
        log(f"    {r.status}{took}" + (f": {r.reason}" if r.reason else ""))
        results.append(r)

    summary = RunSummary.of(
        results,
        profile=profile,
        started=started.isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - t0, 1),
        commit=_commit(),
        manifest=str(loaded.path),
        kernel=kernel_dir,
        host={
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        },
        provenance=provenance(),
    )
    if mlflow_store != "off":
        summary.tracking = track_summary(summary, Path(mlflow_store or default_store(out)))
        if "error" in summary.tracking:
            log(f"warning: not logged to MLflow ({summary.tracking['error']})")
    previous = None
    if (out / "summary.json").exists():
        os.replace(out / "summary.json", out / "summary.previous.json")
    if (out / "summary.previous.json").exists():
        try:
            previous = RunSummary.from_json(
                json.loads((out / "summary.previous.json").read_text(encoding="utf-8"))
            )
        except ValueError:
            log(f"warning: {out / 'summary.previous.json'} is not valid JSON; no comparison shown.")
    (out / "summary.json").write_text(
        json.dumps(summary.to_json(), indent=2, default=str), encoding="utf-8"
    )
    report = write_report(summary, previous, out / "report.html")
    log(" ".join(f"{n} {s}" for s, n in summary.counts.items() if n) or "no notebooks selected")
    log(f"summary: {out / 'summary.json'}")
    log(f"report: {report}")
    return summary
