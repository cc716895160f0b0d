"""Execute one notebook with papermill; run as `python -m nbs_ci.child JOB.json` by the runner.

The runner starts this in its own process so that a hanging notebook can be killed with its
kernel, and its memory measured. The outcome goes to the job's `result` file as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are coloured)."""
    return _ANSI.sub("", text)


def execute(job: dict) -> dict:
    """Run papermill as `job` describes; return {"ok": bool, "error": None | {...}}."""
    import papermill

    try:
        papermill.execute_notebook(
            job["input"],
            job["output"],
            parameters=job["parameters"],
            kernel_name=job["kernel"],
            cwd=job["cwd"],
            log_output=False,
            progress_bar=False,
            start_timeout=job["start_timeout"],
        )
    except papermill.PapermillExecutionError as e:
        return {
            "ok": False,
            "error": {
                "kind": "cell",
                "cell_index": e.cell_index,
                "execution_count": e.exec_count,
                "ename": e.ename,
                "evalue": e.evalue,
                "source": e.source,
                "traceback": strip_ansi("\n".join(e.traceback)),
            },
        }
    except Exception as e:  # kernel died, failed to start, unreadable notebook...
        import traceback

        return {
            "ok": False,
            "error": {
                "kind": "runner",
                "ename": type(e).__name__,
                "evalue": str(e),
                "source": "",
                "traceback": strip_ansi(traceback.format_exc()),
            },
        }
    stopped = unfinished_cell(job["output"])
    return {"ok": stopped is None, "error": stopped}


def unfinished_cell(executed: str) -> dict | None:
    """The first code cell of an executed notebook that did not complete (e.g. after a
    `sys.exit(0)`, which papermill lets pass), as an error; None when every cell completed."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for i, cell in enumerate(nb.cells):
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if cell.cell_type != "code" or status == "completed":
            continue
        raised: dict = next(
            (o for o in cell.get("outputs", []) if o.get("output_type") == "error"), {}
        )
        return {
            "kind": "cell",
            "cell_index": i,
            "execution_count": cell.get("execution_count"),
            "ename": raised.get("ename", "CellNotCompleted"),
            "evalue": f"cell {i} ended {status or 'unrun'} ({raised.get('ename', 'no error')}"
            f"{': ' + str(raised['evalue']) if raised.get('evalue') else ''}), so the cells "
            "after it never ran; remove the sys.exit/exit call or raise an exception instead",
            "source": cell.source,
            "traceback": strip_ansi("\n".join(raised.get("traceback", []))),
        }
    return None


def main(argv: list[str]) -> int:
    """Entry point: read the job file, execute, write the result file."""
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = execute(job)
    Path(job["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
