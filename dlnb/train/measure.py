"""Measure what a training technique buys: throughput, peak memory and accuracy of `fit` runs
in interleaved rounds against a baseline (`compare_techniques`, `summarise_speedups`,
`describe_speedups`).

One short timing is noise: a shared machine speeds up and slows down by tens of percent from one
second to the next. `compare_techniques` runs every technique once per round, in an order rotated
each round (so drift and warm-up hit every technique alike), and compares each run with the
baseline of the same round; the 95 % interval of those paired ratios over the rounds says what
is real (`summarise_speedups`), and the sentences come from its verdict (`describe_speedups`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dlnb import claims
from dlnb.runtime import Timer
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

Measure = Callable[[nn.Module, Any, TrainConfig], Mapping[str, Any]]


def _measure_fit(model: nn.Module, loaders, config: TrainConfig) -> dict:
    """Train `model` with `fit` and report images/s (training and validation included), peak
    GPU memory (NaN off CUDA: a CPU process's resident memory is not what a technique needs), the
    last validation accuracy and, with `loaders.test`, the test accuracy."""
    device = resolve_device(config)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with Timer(device) as timer:
        history = fit(model, loaders, config, device=device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
    images = len(loaders.train.dataset) * len(history)
    result = {
        "images_per_s": images / timer.seconds,
        "seconds": timer.seconds,
        "peak_memory_mib": peak,
        "valid_accuracy": history.records[-1].get("valid_accuracy"),
    }
    if getattr(loaders, "test", None) is not None:
        result["test_accuracy"] = evaluate(model, loaders.test, config, device=device)["accuracy"]
    return result


def _rotated_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The run order of each round: round r starts r places further along `names`, so with as
    many rounds as names every technique runs once in every position."""
    names = list(names)
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(rounds)]


def compare_techniques(
    make_model: Callable[[], nn.Module],
    techniques: Mapping[str, tuple[Any, TrainConfig]],
    *,
    rounds: int = 5,
    seed: int = 0,
    baseline: str | None = None,
    warmup_steps: int | None = 2,
    measure: Measure = _measure_fit,
    log: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Train a fresh `make_model()` with every technique once per round, in an order rotated
    each round (round r starts r places further along); round r seeds the model and the config
    with `seed + r`.

    One tidy row per run: round, position, technique, seed, what `measure` returns, and
    `speedup`: images/s over the `baseline`'s in the same round.

    Args:
        make_model: builds the untrained network, called once per run.
        techniques: name -> (loaders, config) of each technique.
        rounds: how many times every technique runs.
        seed: round r seeds the model and the config with `seed + r`.
        baseline: the technique the speedups are over (default the first one).
        warmup_steps: untimed steps of each technique before the first round, so no round pays
            one-time costs (0: none; None: a whole epoch, so `torch.compile` also meets the
            epoch's last, smaller batch).
        measure: trains one run and returns its numbers, `images_per_s` among them (default:
            `fit` timed, with its peak GPU memory and validation and test accuracy).
        log: called with one line per run (None: quiet).
    """
    import pandas as pd

    baseline = baseline or next(iter(techniques))
    if baseline not in techniques:
        raise ValueError(f"baseline {baseline!r} is not one of the techniques {list(techniques)}.")
    if rounds < 1:
        raise ValueError(f"Need at least one round, got rounds={rounds}.")
    if warmup_steps != 0:
        for loaders, config in techniques.values():
            warm = replace(config, seed=seed, epochs=1, max_steps_per_epoch=warmup_steps)
            measure(make_model(), loaders, warm)
    rows = []
    for r, order in enumerate(_rotated_orders(list(techniques), rounds)):
        for position, name in enumerate(order):
            loaders, config = techniques[name]
            torch.manual_seed(seed + r)
            result = measure(make_model(), loaders, replace(config, seed=seed + r))
            rows.append({"round": r, "position": position, "technique": name, "seed": seed + r})
            rows[-1].update(result)
            if log is not None:
                log(f"round {r + 1}/{rounds}  {name:<16} {result['images_per_s']:>9,.0f} images/s")
    frame = pd.DataFrame(rows)
    reference = frame[frame["technique"] == baseline].set_index("round")["images_per_s"]
    frame["speedup"] = frame["images_per_s"] / frame["round"].map(reference)
    return frame


def _speed_verdict(low: float, high: float) -> str:
    """From the 95 % interval [low, high] of a speedup: "faster" (it lies above 1), "slower"
    (below 1), "within noise" (it covers 1), or "unresolved" (no interval: one round)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "unresolved"
    if low > 1.0:
        return "faster"
    if high < 1.0:
        return "slower"
    return "within noise"


def accuracy_verdict(change: claims.Effect, band: float) -> str:
    """A one-sided (non-inferiority) reading of an accuracy change: "keeps" when the whole 95 %
    interval lies above -band (it costs at most `band`); "costs" when it reaches below -band and
    lies wholly below 0; "unresolved" when it reaches below -band without excluding 0."""
    if not (math.isfinite(change.low) and math.isfinite(change.high)):
        return "unresolved"
    if change.low >= -band:
        return "keeps"
    return "costs" if change.high < 0 else "unresolved"


def _speed_interval(ratios: pd.Series) -> tuple[float, float, float]:
    """Geometric mean of per-round ratios and its t-based 95 % interval (over the rounds' logs)."""
    mean, low, high = claims.t_interval(np.log(ratios.to_numpy(dtype=float)))
    return math.exp(mean), math.exp(low), math.exp(high)


def summarise_speedups(
    frame: pd.DataFrame,
    baseline: str | None = None,
    accuracy: str = "test_accuracy",
    band: float = 0.02,
) -> pd.DataFrame:
    """Per technique of a `compare_techniques` frame, each effect paired with the baseline's run
    of the same round:

    - `speedup`: the geometric mean over rounds of images/s over the same round's baseline, with
      its t-based 95 % interval (`speedup_low`, `speedup_high`) and `verdict` (faster,
      slower, within noise, or unresolved with one round);
    - `accuracy` (mean, with `accuracy_low` / `accuracy_high` its min and max over rounds) and
      `accuracy_change` against the same round's baseline (`claims.paired_effect`), with its 95 %
      interval and `accuracy_verdict` (`accuracy_verdict`: does it cost more than `band`?).
    """
    import pandas as pd

    baseline = baseline or frame["technique"].iloc[0]
    reference = frame[frame["technique"] == baseline].set_index("round")[accuracy]
    rows = {
        name: _summary_row(runs.sort_values("round"), reference, accuracy, band, name == baseline)
        for name, runs in frame.groupby("technique", sort=False)
    }
    summary = pd.DataFrame(rows).T.rename_axis("technique")
    return summary.infer_objects()


def _summary_row(
    runs: pd.DataFrame, reference: pd.Series, accuracy: str, band: float, is_baseline: bool
) -> dict:
    """One technique's row of `summarise_speedups` (its runs sorted by round)."""
    speed, low, high = _speed_interval(runs["speedup"])
    change = claims.paired_effect(
        runs[accuracy].to_numpy(float), runs["round"].map(reference).to_numpy(float)
    )
    return {
        "rounds": runs["round"].nunique(),
        "speedup": speed,
        "speedup_low": low,
        "speedup_high": high,
        "verdict": "baseline" if is_baseline else _speed_verdict(low, high),
        "accuracy": runs[accuracy].mean(),
        "accuracy_low": runs[accuracy].min(),
        "accuracy_high": runs[accuracy].max(),
        "accuracy_change": change.diff,
        "accuracy_change_low": change.low,
        "accuracy_change_high": change.high,
        "accuracy_verdict": "baseline" if is_baseline else accuracy_verdict(change, band),
    }


def _interval_x(row: pd.Series) -> str:
    return (
        f"{row['speedup']:.2f}x (95 % CI {row['speedup_low']:.2f}x to {row['speedup_high']:.2f}x)"
    )


SPEED_WORDS = {
    "faster": "**faster**",
    "slower": "**slower**",
    "within noise": "**within noise** (this run cannot tell it from the baseline)",
    "unresolved": "**unresolved** (one round gives no interval)",
}


def describe_speedups(
    summary: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    *,
    where: str = "this machine",
    band: float = 0.02,
    skipped: Mapping[str, str] | None = None,
) -> str:
    """Markdown from a `summarise_speedups` table, every number and word taken from it: one
    bullet per technique (its speed verdict on `where`, the ratio with its interval, the accuracy
    change with its interval), the techniques grouped by verdict, which techniques keep the
    baseline's accuracy to within `band`, and the techniques that were `skipped` (name -> why)."""
    names = labels or {}

    def label(name: object) -> str:
        return names.get(str(name), str(name))

    lines = [_bullet(label(name), row, where) for name, row in summary.iterrows()]
    others = summary[summary["verdict"] != "baseline"]
    groups = [
        f"{verdict}: {', '.join(label(n) for n in others.index[others['verdict'] == verdict])}"
        for verdict in ("faster", "slower", "within noise", "unresolved")
        if (others["verdict"] == verdict).any()
    ]
    lines.append(f"\n**Speed on {where}**: {'; '.join(groups)}.")
    lines.append(_describe_accuracy(others, label, band))
    reasons: dict[str, list[str]] = {}
    for name, why in (skipped or {}).items():
        reasons.setdefault(why, []).append(f"**{label(name)}**")
    for why, skipped_names in reasons.items():
        verb = "was" if len(skipped_names) == 1 else "were"
        lines.append(f"\n{' and '.join(skipped_names)} {verb} not run: {why}.")
    return "\n".join(lines)


def _bullet(name: str, row: pd.Series, where: str) -> str:
    """One technique's bullet: the baseline's accuracy, or a speed verdict with both intervals."""
    if row["verdict"] == "baseline":
        return (
            f"- **{name}** is the baseline: accuracy {row['accuracy']:.3f} on average, "
            f"{row['accuracy_low']:.3f} to {row['accuracy_high']:.3f} over {row['rounds']} "
            "rounds (a seed each)."
        )
    return (
        f"- **{name}** is {SPEED_WORDS[row['verdict']]} on {where}: {_interval_x(row)} "
        f"the baseline's images/s over {row['rounds']} rounds; accuracy change "
        f"{row['accuracy_change']:+.3f} (95 % CI {row['accuracy_change_low']:+.3f} to "
        f"{row['accuracy_change_high']:+.3f})."
    )


def _describe_accuracy(others: pd.DataFrame, label: Callable[[object], str], band: float) -> str:
    """Which techniques are shown to keep the baseline's accuracy (to within `band`), and which not."""
    keeps = [label(n) for n in others.index[others["accuracy_verdict"] == "keeps"]]
    rest = others[others["accuracy_verdict"] != "keeps"]
    if rest.empty:
        return (
            f"\n**Accuracy**: every technique keeps the baseline's accuracy: each change's 95 % "
            f"interval over the rounds lies above -{band:g} (a loss of at most {band:g})."
        )
    text = "\n**Accuracy**: " + (
        f"{', '.join(keeps)} keep the baseline's accuracy (a loss of at most {band:g}, by the "
        "interval). "
        if keeps
        else ""
    )
    for name, row in rest.iterrows():
        interval = f"{row['accuracy_change_low']:+.3f} to {row['accuracy_change_high']:+.3f}"
        if row["accuracy_verdict"] == "costs":
            text += f"{label(name)} costs accuracy (95 % CI {interval}). "
        else:
            text += (
                f"{label(name)} is unresolved in this run: its 95 % CI {interval} reaches below "
                f"-{band:g}. "
            )
    return text.rstrip()


def skipped_techniques(device_type: str, smoke: bool) -> dict[str, str]:
    """The techniques a run leaves out, and why (for `describe_speedups(skipped=...)`)."""
    if device_type == "cuda" or not smoke:
        return {}
    why = (
        "torch.compile is left out of the smoke profile on a CPU to keep it short (compiling is a "
        "one-time cost that only long runs repay); the full profile measures it"
    )
    return {"compile": why, "all_together": why}


def speed_scope(device_type: str, resident_gate: float = 1.5, band: float = 0.005) -> str:
    """What the speed verdicts of this run are about, and what the full profile will gate on a
    GPU: said as findings on a GPU, as expectations everywhere else."""
    gates = (
        f"the device-resident loader at least {resident_gate:g}x the DataLoader's images/s at the "
        f"low end of its 95 % interval, and every technique's accuracy at most {band:g} below "
        "the baseline's at the low end of its interval"
    )
    if device_type == "cuda":
        return f"This run is on a GPU: the verdicts above are this GPU's. The full profile gates {gates}."
    return (
        f"This run is on a {device_type.upper()}: the verdicts above are this machine's, today, and "
        "say nothing about a GPU. What to expect there is an expectation, not a finding of this "
        "run: LeNet-5's arithmetic takes a small fraction of a GPU's time, so the DataLoader's "
        "per-example Python becomes the bottleneck that the resident loader removes, while mixed "
        "precision and channels_last pay off on larger models that do more arithmetic per byte. "
        f"The full profile, run on a GPU, gates {gates}."
    )


def plot_speedups(
    frame: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    accuracy: str = "test_accuracy",
) -> Figure:
    """Every round of a `compare_techniques` frame as a dot: the speedup over the same round's
    baseline with its geometric mean (|) and 95 % interval (black bar), and the accuracy with its
    mean (|)."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    names = list(dict.fromkeys(frame["technique"]))
    fig, (speed, acc) = plt.subplots(
        1, 2, figsize=(12, 1.2 + 0.5 * len(names)), sharey=True, layout="constrained"
    )
    for i, name in enumerate(names):
        runs = frame[frame["technique"] == name]
        for ax, values in ((speed, runs["speedup"]), (acc, runs[accuracy])):
            ax.scatter(values, [i] * len(values), color="tab:blue", alpha=0.6, zorder=3)
        mean, low, high = _speed_interval(runs["speedup"])
        if math.isfinite(low) and math.isfinite(high):
            speed.hlines(i, low, high, color="black", lw=3, alpha=0.7)
        speed.plot([mean], [i], "|", color="black", markersize=16)
        acc.plot([runs[accuracy].mean()], [i], "|", color="black", markersize=16)
    speed.axvline(1.0, color="grey", ls="--")
    speed.set_yticks(range(len(names)), [labels.get(n, n) for n in names])
    speed.invert_yaxis()
    speed.set_xlabel("images/s over the same round's baseline (x)")
    acc.set_xlabel(accuracy.replace("_", " "))
    rounds = frame["round"].nunique()
    fig.suptitle(
        f"{rounds} interleaved rounds: one dot per round; | the mean (geometric for speed), "
        "black bar its 95 % CI"
    )
    return fig
