"""Write a run's `report.html`: one self-contained page with tables, inline plots and changes."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable
from html import escape
from pathlib import Path

from nbs_ci.results import RunSummary

COLOURS = {
    "passed": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#c62828",
    "missed_gate": "#ef6c00",
    "skipped": "#757575",
}
CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{color:#fff;padding:.1rem .4rem;border-radius:.3rem;font-weight:600}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
.worse{color:#c62828}.better{color:#2e7d32}img{max-width:100%}
"""


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _floats(values: Iterable[float | None]) -> list[float]:
    """Values to plot, None as NaN (matplotlib draws nothing there)."""
    return [math.nan if v is None else v for v in values]


def _delta(now, before):
    return round(now - before, 6) if _is_number(now) and _is_number(before) else None


def changes(summary: RunSummary, previous: RunSummary | None) -> dict[str, dict]:
    """Per notebook present in both runs: previous status, duration and metric values, and deltas."""
    before = {nb.name: nb for nb in (previous.notebooks if previous is not None else [])}
    found = {}
    for nb in summary.notebooks:
        old = before.get(nb.name)
        if old is None:
            continue
        found[nb.name] = {
            "status": old.status or None,
            "duration_s": old.duration_s,
            "duration_delta": _delta(nb.duration_s, old.duration_s),
            "metrics": {
                m: {"previous": old.metrics[m], "delta": _delta(v, old.metrics[m])}
                for m, v in nb.metrics.items()
                if m in old.metrics
            },
        }
    return found


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def _duration_plot(summary: RunSummary, diff: dict) -> str:
    from matplotlib.figure import Figure

    nbs = [nb for nb in summary.notebooks if nb.duration_s is not None]
    if not nbs:
        return ""
    fig = Figure(figsize=(8, 0.5 + 0.45 * len(nbs)))
    ax = fig.subplots()
    y = range(len(nbs))
    ax.barh(y, _floats(nb.duration_s for nb in nbs), color=[COLOURS[nb.status] for nb in nbs])
    ax.scatter(_floats(nb.budget_s for nb in nbs), y, marker="|", s=300, color="k", label="budget")
    prev = [
        (i, diff[nb.name]["duration_s"])
        for i, nb in enumerate(nbs)
        if _is_number(diff.get(nb.name, {}).get("duration_s"))
    ]
    if prev:
        ax.scatter(
            [p for _, p in prev],
            [i for i, _ in prev],
            marker="o",
            color="#1565c0",
            label="previous run",
            zorder=3,
        )
    ax.set_yticks(list(y), [nb.name for nb in nbs])
    ax.invert_yaxis()
    ax.set_xlabel("wall-clock seconds")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _memory_plot(summary: RunSummary) -> str:
    from matplotlib.figure import Figure

    nbs = [nb for nb in summary.notebooks if nb.peak_rss_mb is not None]
    if not nbs:
        return ""
    fig = Figure(figsize=(8, 0.5 + 0.45 * len(nbs)))
    ax = fig.subplots()
    y = range(len(nbs))
    ax.barh(y, _floats(nb.peak_rss_mb for nb in nbs), height=0.4, label="peak RSS (kernel)")
    gpu = [(i, nb.gpu_peak_mb) for i, nb in enumerate(nbs) if nb.gpu_peak_mb is not None]
    if gpu:
        ax.barh(
            [i + 0.4 for i, _ in gpu], [g for _, g in gpu], height=0.4, label="GPU peak allocated"
        )
    ax.set_yticks(list(y), [nb.name for nb in nbs])
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _metrics_plot(summary: RunSummary, diff: dict) -> str:
    from matplotlib.figure import Figure

    panels = [
        (nb.name, m, v) for nb in summary.notebooks for m, v in nb.metrics.items() if _is_number(v)
    ]
    if not panels:
        return ""
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4 * cols, 1.5 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    gates = {(nb.name, g["metric"]): g for nb in summary.notebooks for g in nb.gates}
    for ax, (name, metric, value) in zip(axes[: len(panels)], panels, strict=True):
        gate = gates.get((name, metric))
        colour = "#757575" if gate is None else COLOURS["passed" if gate["passed"] else "failed"]
        ax.barh([0], [value], color=colour)
        if gate is not None and _is_number(gate["threshold"]):
            ax.axvline(gate["threshold"], color="k", ls="--", lw=1)
        old = diff.get(name, {}).get("metrics", {}).get(metric, {}).get("previous")
        if _is_number(old):
            ax.scatter([old], [0], color="#1565c0", zorder=3)
        ax.set_yticks([])
        ax.set_title(f"{name}: {metric} = {value:.4g}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(
        "bars: this run (green: gate met, red: missed, grey: no gate); "
        "dashed: gate; dot: previous run",
        fontsize=8,
    )
    fig.tight_layout()
    return _png(fig)


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return escape(str(x))


def _signed(x, lower_is_better: bool = False) -> str:
    if x is None:
        return "–"
    better = x < 0 if lower_is_better else x > 0
    cls = "" if x == 0 else ("better" if better else "worse")
    return f'<span class="{cls}">{x:+.4g}</span>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _status(status: str) -> str:
    return f'<span class="status" style="background:{COLOURS.get(status, "#757575")}">{escape(status)}</span>'


def _num(x, digits: int = 4) -> str:
    return f'<td class="num">{_fmt(x, digits)}</td>'


def _notebook_rows(summary: RunSummary, diff: dict) -> list[list[str]]:
    rows = []
    for nb in summary.notebooks:
        d = diff.get(nb.name, {})
        gates = nb.gates
        link = (
            f'<a href="{escape(nb.notebook)}">{escape(nb.name)}</a>'
            if nb.notebook
            else escape(nb.name)
        )
        rows.append(
            [
                link,
                _status(nb.status),
                escape(nb.accelerator),
                _num(nb.duration_s, 3),
                _num(nb.budget_s, 4),
                f'<td class="num">{_signed(d.get("duration_delta"), lower_is_better=True)}</td>',
                escape(str(d.get("status") or "–")),
                _num(nb.peak_rss_mb, 5),
                _num(nb.gpu_peak_mb, 5),
                f"{sum(g['passed'] for g in gates)}/{len(gates)}" if gates else "–",
                escape(nb.reason),
            ]
        )
    return rows


def _metric_rows(summary: RunSummary, diff: dict) -> list[list[str]]:
    rows = []
    for nb in summary.notebooks:
        gates = {g["metric"]: g for g in nb.gates}
        old = diff.get(nb.name, {}).get("metrics", {})
        for metric in [*nb.metrics, *(m for m in gates if m not in nb.metrics)]:
            gate, change = gates.get(metric), old.get(metric, {})
            verdict = (
                "–"
                if gate is None
                else (
                    _status("passed")
                    if gate["passed"]
                    else _status("missed_gate") + " " + escape(gate["reason"])
                )
            )
            rows.append(
                [
                    escape(nb.name),
                    escape(metric),
                    _num(nb.metrics.get(metric)),
                    "–" if gate is None else escape(f"{gate['op']} {gate['threshold']!r}"),
                    verdict,
                    _num(change.get("previous")),
                    f'<td class="num">{_signed(change.get("delta"))}</td>',
                ]
            )
    return rows


def _failures(summary: RunSummary) -> str:
    parts = []
    for nb in summary.notebooks:
        e = nb.error
        if not e:
            continue
        where = (
            f"cell {e['cell_index']} of the executed notebook"
            if e.get("cell_index") is not None
            else "no cell"
        )
        parts.append(
            f"<h3>{escape(nb.name)}: {_status(nb.status)}</h3>"
            f"<p><b>{escape(e['ename'])}</b>: {escape(str(e['evalue']))} ({where})</p>"
        )
        if e.get("source"):
            label = "Cell running when it was stopped" if e["kind"] == "timeout" else "Failing cell"
            parts.append(f"<p>{label}:</p><pre>{escape(e['source'])}</pre>")
        if e.get("traceback"):
            parts.append(f"<p>Traceback:</p><pre>{escape(e['traceback'])}</pre>")
    return "".join(parts) or "<p>None.</p>"


def _key_values(d: dict) -> str:
    return _table(["key", "value"], [[escape(str(k)), escape(str(v))] for k, v in d.items()])


def _datasets(datasets: dict) -> str:
    if "error" in datasets and not isinstance(datasets["error"], dict):
        return f"<p>Not available: {escape(datasets['error'])}</p>"
    rows = []
    for name, info in datasets.items():
        checksums = info.get("checksums") or {}
        sums = "<br>".join(f"{escape(k)}: <code>{escape(v)}</code>" for k, v in checksums.items())
        if sums and not info.get("pinned"):
            sums = "recorded when cached:<br>" + sums
        rows.append(
            [
                escape(name),
                "yes" if info.get("cached") else "no",
                f"<code>{escape(info.get('cache_sha256') or '–')}</code>",
                sums or escape(info.get("error", "–")),
            ]
        )
    return _table(["dataset", "cached", "cache file sha256", "canonical array checksums"], rows)


def _tracking(tracking: dict) -> str:
    """Where the run was logged to MLflow, or a warning that it was not."""
    if not tracking:
        return "<p>Not logged to MLflow.</p>"
    store, experiment = escape(str(tracking.get("store"))), escape(str(tracking.get("experiment")))
    if "error" in tracking:
        return (
            f"<p class='worse'>Warning: not logged to the MLflow store {store}: "
            f"{escape(str(tracking['error']))}. The notebooks' results above are unaffected.</p>"
        )
    return (
        f"<p>Logged {tracking.get('runs')} notebook run(s) to the MLflow store {store}, "
        f"experiment <code>{experiment}</code> (compare nights with <code>make mlflow</code>).</p>"
    )


def render(summary: RunSummary, previous: RunSummary | None) -> str:
    """The report as one HTML string (plots inline as base64 PNG)."""
    diff = changes(summary, previous)
    verdict = "all passed" if summary.ok else "FAILED"
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n) or "no notebooks"
    compared = (
        f"compared with the run of {escape(previous.started or '?')} "
        f"(commit {escape(str(previous.commit or 'unknown'))}; dots and Δ columns)"
        if previous is not None
        else "no previous run in this folder to compare with"
    )
    device = dict(summary.provenance.get("device", {}))
    gpus = device.pop("devices", [])
    html = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>nbs_ci {escape(summary.profile)} "
        f"report</title><style>{CSS}</style></head><body>",
        f"<h1>Notebook run: {escape(summary.profile)} profile — {escape(verdict)}</h1>",
        f"<p>{escape(counts)}. Started {escape(summary.started)}, took {summary.duration_s} s, "
        f"commit {escape(str(summary.commit or 'unknown'))}, host {escape(summary.host['hostname'])}. "
        f"{compared}.</p>",
        _tracking(summary.tracking),
        "<h2>Notebooks</h2>",
        _table(
            [
                "notebook",
                "status",
                "needs",
                "seconds",
                "budget",
                "Δ seconds",
                "previous status",
                "peak RSS MB",
                "GPU peak MB",
                "gates met",
                "reason",
            ],
            _notebook_rows(summary, diff),
        ),
        "<h2>Metrics against gates</h2>",
        _table(
            ["notebook", "metric", "value", "gate", "result", "previous", "Δ"],
            _metric_rows(summary, diff),
        ),
        "<h2>Plots</h2>",
        "<h3>Durations</h3>",
        _duration_plot(summary, diff),
        "<h3>Metrics</h3>",
        _metrics_plot(summary, diff) or "<p>No numeric metrics recorded.</p>",
        "<h3>Peak memory</h3>",
        _memory_plot(summary),
        "<h2>Failures</h2>",
        _failures(summary),
        "<h2>Device</h2>",
        _key_values(device),
        *[_key_values(g) for g in gpus],
        "<h2>Package versions</h2>",
        _key_values(summary.provenance.get("versions", {})),
        "<h2>Datasets</h2>",
        _datasets(summary.provenance.get("datasets", {})),
        "<h2>Host</h2>",
        _key_values(summary.host),
        "</body></html>",
    ]
    return "\n".join(html)


def write_report(summary: RunSummary, previous: RunSummary | None, path: Path | str) -> Path:
    """Render the report and write it to `path`; returns the absolute path."""
    path = Path(path).resolve()
    path.write_text(render(summary, previous), encoding="utf-8")
    return path
