"""The sentences of the deployment lesson, each chosen by what the run measured.

Every function returns text built from its arguments (Markdown where it says so); a notebook
shows it with `display(Markdown(...))` or `print`. Effects come with their intervals: speed ratios
paired over benchmark rounds (`bench.latency_ratio`), alert rates with Wilson intervals over
windows (`shifts.rate_interval`), accuracy changes bootstrapped over test examples or paired over
seeds. Tests cover each outcome.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dlnb import claims
from dlnb.deploy.bench import LatencyRatio
from dlnb.deploy.shifts import rate_interval


def _group(ratios: Mapping[int, LatencyRatio]) -> str:
    """'slower at batch 1 and 16; faster at batch 256', by verdict."""
    parts = []
    for verdict in ("slower", "faster", "within noise", "unresolved"):
        batches = [str(b) for b, r in ratios.items() if r.verdict == verdict]
        if batches:
            parts.append(f"{verdict} at batch {', '.join(batches)}")
    return "; ".join(parts)


def describe_runtimes(
    ort_latency: LatencyRatio,
    ort_throughput: LatencyRatio,
    int8: Mapping[int, LatencyRatio],
    quant: Mapping[str, float],
    where: str = "this CPU",
) -> str:
    """Markdown: ONNX Runtime against eager, int8 against float32 at each batch size (each with
    its interval and verdict), and what int8 bought for certain (size) and cost (accuracy)."""
    lines = [
        f"**ONNX Runtime against eager PyTorch.** {ort_latency.sentence()} "
        f"{ort_throughput.sentence()}",
        "",
        "**int8 against float32 ONNX Runtime**, by p50 latency:",
        *[f"- {r.sentence()}" for r in int8.values()],
        "",
        f"**On {where}, int8 is {_group(int8)}.**",
    ]
    low, high = quant["accuracy_change_low"], quant["accuracy_change_high"]
    change = -quant["accuracy_drop"]
    lines.append(
        f"What int8 bought for certain: a file {quant['size_ratio']:.1f}x smaller. Its accuracy "
        f"changed by {100 * change:+.2f} points on the {int(quant['n']):,} test digits (95 % CI "
        f"{100 * low:+.2f} to {100 * high:+.2f}, bootstrap over the digits)"
        + (
            ": within noise."
            if low <= 0 <= high
            else (": a real loss." if high < 0 else ": a real gain.")
        )
    )
    return "\n".join(lines)


def describe_batching(load, ratio_name: str = "batching") -> str:
    """One line on the load tests: throughput ratio, p99 and failures; a single run each."""
    ratio = load.throughput_rps.iloc[1] / load.throughput_rps.iloc[0]
    failures = int(load.errors.sum() + load.wrong.sum())
    return (
        f"{ratio_name}: {ratio:.2f}x the throughput in this one run, p99 "
        f"{load.p99_ms.iloc[1]:.0f} ms; errors or "
        f"wrong answers: {failures}. One load test of each mode: a single measurement with no "
        "interval (benchmarks/serve_batching.py repeats it in its own process)."
    )


def _pooled(accuracy: np.ndarray, window: int) -> str:
    """Mean accuracy over windows of `window` examples, with its Wilson 95 % interval."""
    hits, n = int(round(float(accuracy.sum()) * window)), len(accuracy) * window
    low, high = rate_interval(hits, n)
    return f"{accuracy.mean():.3f} (95 % CI {low:.3f} to {high:.3f}, {n:,} examples)"


def describe_stream(
    first: int | None,
    shift_at: int,
    false_alarms: int,
    window_accuracy: np.ndarray,
    window: int,
) -> str:
    """Markdown on the single shifted stream: when the monitor alerted, against when it began,
    and the accuracy before and after with Wilson intervals over the `window`-sized windows."""
    before = _pooled(window_accuracy[:shift_at], window)
    after = _pooled(window_accuracy[shift_at:], window)
    if first is None:
        seen = "The monitor never alerted after the shift: it missed it"
    elif first == shift_at:
        seen = (
            "The input statistics crossed their thresholds in the first shifted window, without "
            "a single label"
        )
    else:
        seen = f"The monitor first alerted {first - shift_at} windows after the shift began"
    alarms = (
        "with no false alarm before it"
        if false_alarms == 0
        else f"after {false_alarms} false alarm(s) before it"
    )
    return (
        f"{seen}, {alarms}. Accuracy per window fell from {before} before the shift to "
        f"{after} after it: the accuracy panel is what the monitor stands in for, since live "
        "labels are rare and late."
    )


def describe_sweep(
    summary,
    false_alarms: tuple[float, int],
    tiny: float,
    large: float,
    worst_delay_large: float,
    seeds: int,
) -> str:
    """Markdown bullets on the severity sweep, each rate with its Wilson 95 % interval over the
    windows of all seeds; the wording follows the interval, not the point.

    Args:
        summary: `shifts.summarise_sweep` of the sweep.
        false_alarms: (rate, clean windows) from `shifts.false_alarm_rate`.
        tiny: the smallest shift's severity.
        large: the largest shift's severity.
        worst_delay_large: the worst detection delay at `large` over the seeds.
        seeds: how many seeds the sweep ran.
    """
    rate, clean = false_alarms
    low, high = rate_interval(round(rate * clean), clean)
    return "\n".join(
        [
            f"- No shift: {rate:.1%} of {clean} clean windows alerted (false alarms; 95 % CI "
            f"{low:.1%} to {high:.1%}).",
            _tiny_bullet(summary, tiny),
            _always_bullet(summary, large, worst_delay_large, seeds),
            _between_bullet(summary),
        ]
    )


def _tiny_bullet(summary, tiny: float) -> str:
    t = summary.loc[tiny]
    seen = (
        "too rarely to count on: for practical purposes this monitor does not see it"
        if t.alert_rate_high <= 0.15
        else "often enough that the monitor does see it at times"
        if t.alert_rate_low > 0.15
        else "at a rate this run cannot pin down"
    )
    return (
        f"- The smallest shift (severity {tiny}) alerted in {t.alert_rate_after:.0%} of "
        f"{int(t.shifted_windows)} shifted windows (95 % CI {t.alert_rate_low:.0%} to "
        f"{t.alert_rate_high:.0%}): {seen}."
    )


def _always_bullet(summary, large: float, worst_delay_large: float, seeds: int) -> str:
    always = [s for s in summary.index if s > 0 and summary.loc[s].alert_rate_after == 1.0]
    if not always:
        return "- No severity tried alerted in every shifted window."
    a = summary.loc[always[0]]
    return (
        f"- From severity {always[0]} on, every shifted window alerted on every seed "
        f"({int(a.shifted_windows)} of {int(a.shifted_windows)} at {always[0]}: 95 % CI "
        f"{a.alert_rate_low:.0%} to 100%); at severity {large} the worst delay over {seeds} "
        f"seeds was {worst_delay_large:.0f} windows."
    )


def _between_bullet(summary) -> str:
    between = [s for s in summary.index if 0 < summary.loc[s].alert_rate_after < 1]
    if not between:
        return (
            "- No severity fell in between: every size was either missed entirely or seen in "
            "every window."
        )
    b = summary.loc[between[0]]
    return (
        f"- In between, detection is a matter of luck: at severity {between[0]}, "
        f"{b.alert_rate_after:.0%} of shifted windows alerted (95 % CI {b.alert_rate_low:.0%} "
        f"to {b.alert_rate_high:.0%}) and the mean delay was {b.mean_delay:.1f} windows. "
        "Larger windows or a lower threshold would see it sooner, at the price of more false "
        "alarms."
    )


def describe_label_shift(
    label_shift,
    clean_rate: float,
    clean_psi: float,
    psi_threshold: float,
    expected_change: float,
    window: int,
    test_accuracy: float,
) -> str:
    """Markdown on label shift: which monitor saw it (rates with Wilson intervals over the shifted
    windows of all seeds) and the accuracy change with its interval over seeds.

    Args:
        label_shift: one row per seed: shifted windows, alert rates per monitor, PSIs, accuracy
            before and after the shift.
        clean_rate: the false-alarm rate on clean windows.
        clean_psi: the median largest PSI on clean windows.
        psi_threshold: the monitor's PSI threshold.
        expected_change: the accuracy change the reference window's per-class accuracies predict.
        window: digits per window.
        test_accuracy: the model's test accuracy (for one window's standard error).
    """
    inputs = label_shift_rates(label_shift, "inputs alert rate")
    predictions = label_shift_rates(label_shift, "predictions alert rate")
    labels = label_shift_rates(label_shift, "labels (delayed) alert rate")
    verdict = (
        "The input monitor misses this shift"
        if inputs["high"] <= 0.25
        else "The input monitor sees this shift too"
        if inputs["low"] > 0.25
        else "Whether the input monitor sees this shift, this run cannot say"
    )
    return (
        f"Over {len(label_shift)} seeds ({int(label_shift['shifted windows'].sum())} shifted "
        f"windows) the input monitor alerted in {_rate(inputs)} of them (on clean windows: "
        f"{clean_rate:.1%}); the predicted-class monitor in {_rate(predictions)}, and the delayed "
        f"labels in {labels['rate']:.0%}. {verdict}: the largest input PSI of the median shifted "
        f"window was {label_shift['median largest input PSI'].median():.2f}, against "
        f"{clean_psi:.2f} on clean windows and the threshold {psi_threshold} (the single worst "
        f"window: {label_shift['largest input PSI'].max():.2f}). Brightness, ink and centre of "
        "mass barely tell these digits apart; the model's output does, so its class distribution "
        "is the monitor that catches label shift without labels. "
        + _accuracy_under_shift(label_shift, expected_change, window, test_accuracy)
    )


def _rate(r: Mapping[str, float]) -> str:
    return f"**{r['rate']:.0%}** (95 % CI {r['low']:.0%} to {r['high']:.0%})"


def _accuracy_under_shift(label_shift, expected: float, window: int, test_accuracy: float) -> str:
    change = claims.paired_effect(
        label_shift["accuracy after"].to_numpy(float),
        label_shift["accuracy before"].to_numpy(float),
        names=("after the shift", "before it"),
    )
    noise = 100 * np.sqrt(test_accuracy * (1 - test_accuracy) / window)
    return (
        f"Accuracy changed by {100 * change.diff:+.1f} points (95 % CI {100 * change.low:+.1f} to "
        f"{100 * change.high:+.1f} over the seeds: {change.verdict}; the per-class accuracies of "
        f"the reference window predict {100 * expected:+.1f}), while the accuracy of one window "
        f"of {window} digits varies by about ±{noise:.1f} points (one standard error) by chance: "
        "even with labels, accuracy is a weak signal of this shift; the class distribution is the "
        "strong one. A shift towards the digit 1 (little ink) would move the input summaries as "
        "well: an input monitor sees label shift only through the features it summarises."
    )


def drift_limitations(
    window_accuracy: np.ndarray,
    shift_at: int,
    delay: int,
    label_input_alarm: float,
    cpu_count: int | None,
) -> list[str]:
    """The model card's limitations, with this run's numbers in them."""
    before, after = window_accuracy[:shift_at].mean(), window_accuracy[shift_at:].mean()
    return [
        "Trained and tested only on MNIST (US census staff and high-school students' digits); "
        "other scripts, scanners or crops are untested.",
        f"Accuracy falls on dimmer, noisier images ({before:.3f} before, {after:.3f} after the "
        f"severity-1 shift of section 7, which the monitor flagged {delay} windows after it "
        "began).",
        "A change in how often each digit arrives (label shift) is nearly invisible to the input "
        f"monitor (it alerted in {label_input_alarm:.0%} of such windows in section 9): watch the "
        "predicted-class distribution too.",
        f"Latency measured on this machine ({cpu_count} CPUs, shared); re-measure on the serving "
        "hardware.",
    ]


def rate_with_interval(hits: int, n: int) -> dict[str, float]:
    """{"rate", "low", "high"}: a rate and its Wilson 95 % interval, for recording."""
    low, high = rate_interval(hits, n)
    return {"rate": hits / n if n else float("nan"), "low": low, "high": high}


def label_shift_rates(label_shift, column: str) -> dict[str, float]:
    """A label-shift alert rate pooled over seeds, with its Wilson interval."""
    hits = int(round((label_shift[column] * label_shift["shifted windows"]).sum()))
    return rate_with_interval(hits, int(label_shift["shifted windows"].sum()))


def sweep_rates(summary, severity: float) -> dict[str, float]:
    """The severity sweep's alert rate at `severity`, with its Wilson interval."""
    row = summary.loc[severity]
    return {
        "rate": float(row.alert_rate_after),
        "low": row.alert_rate_low,
        "high": row.alert_rate_high,
    }
