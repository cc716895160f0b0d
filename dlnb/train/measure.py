"""Measure what a training technique buys: throughput, peak memory and accuracy of `fit` runs,
one run at a time (`measure_fit`) or in interleaved rounds against a baseline
(`compare_techniques`, `summarise_speedups`, `describe_speedups`).

One short timing is noise: a shared machine speeds up and slows down by tens of percent from one
second to the next. `compare_techniques` runs every technique once per round, in an order rotated
each round (so drift and warm-up hit every technique alike), and compares each run with the
baseline of the same round; the spread of those ratios over the rounds says what is real.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlnb.runtime import Timer
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

Measure = Callable[[nn.Module, Any, TrainConfig], Mapping[str, Any]]


def measure_fit(model: nn.Module, loaders, config: TrainConfig) -> dict:
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


def rotated_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
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
    measure: Measure = measure_fit,
    log: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Train a fresh `make_model()` with every technique (name -> (loaders, config)) once per
    round, in `rotated_orders`; round r seeds the model and the config with `seed + r`.

    Before the first round each technique runs `warmup_steps` steps untimed (0: none; None: a
    whole epoch, so `torch.compile` also meets the epoch's last, smaller batch), so no round pays
    one-time costs. One tidy row per run: round, position, technique, seed, what
    `measure` returns, and `speedup`: images/s over the `baseline`'s (default the first technique)
    in the same round.
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
    for r, order in enumerate(rotated_orders(list(techniques), rounds)):
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


def speed_verdict(low: float, high: float) -> str:
    """ "faster in every round", "slower in every round", or "within noise" when the spread of
    the speedups [low, high] covers 1.0."""
    if low > 1.0:
        return "faster in every round"
    if high < 1.0:
        return "slower in every round"
    return "within noise"


def summarise_speedups(
    frame: pd.DataFrame, baseline: str | None = None, accuracy: str = "test_accuracy"
) -> pd.DataFrame:
    """Per technique of a `compare_techniques` frame: rounds, the median speedup and its spread
    (`speedup_low`, `speedup_high`: min and max over rounds), the verdict, the mean `accuracy`
    with its min and max over rounds, and its mean change against the baseline of the same round
    (`accuracy_change`, with the worst and best rounds)."""
    baseline = baseline or frame["technique"].iloc[0]
    reference = frame[frame["technique"] == baseline].set_index("round")[accuracy]
    frame = frame.assign(accuracy_change=frame[accuracy] - frame["round"].map(reference))
    summary = frame.groupby("technique", sort=False).agg(
        rounds=("round", "nunique"),
        speedup=("speedup", "median"),
        speedup_low=("speedup", "min"),
        speedup_high=("speedup", "max"),
        accuracy=(accuracy, "mean"),
        accuracy_low=(accuracy, "min"),
        accuracy_high=(accuracy, "max"),
        accuracy_change=("accuracy_change", "mean"),
        accuracy_change_low=("accuracy_change", "min"),
        accuracy_change_high=("accuracy_change", "max"),
    )
    summary["verdict"] = [
        "baseline" if name == baseline else speed_verdict(low, high)
        for name, low, high in zip(
            summary.index, summary["speedup_low"], summary["speedup_high"], strict=True
        )
    ]
    return summary


def describe_speedups(summary: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """Markdown from a `summarise_speedups` table, every number taken from it: one bullet per
    technique (median speedup, spread, verdict, accuracy change), then which techniques were
    faster, slower or within noise, and whether any accuracy change exceeds the baseline's own
    spread over the rounds' seeds."""
    labels = labels or {}

    def label(name: object) -> str:
        return labels.get(str(name), str(name))

    lines = []
    for name, row in summary.iterrows():
        if row["verdict"] == "baseline":
            lines.append(
                f"- **{label(name)}** is the baseline: accuracy {row['accuracy']:.3f} on average, "
                f"{row['accuracy_low']:.3f} to {row['accuracy_high']:.3f} over {row['rounds']} "
                "rounds (a seed each)."
            )
            continue
        lines.append(
            f"- **{label(name)}**: {row['speedup']:.2f}x the baseline's images/s (median of "
            f"{row['rounds']} rounds, {row['speedup_low']:.2f}x to {row['speedup_high']:.2f}x): "
            f"**{row['verdict']}**; accuracy {row['accuracy']:.3f}, "
            f"{row['accuracy_change']:+.3f} against the baseline of the same round on average "
            f"({row['accuracy_change_low']:+.3f} to {row['accuracy_change_high']:+.3f})."
        )
    others = summary[summary["verdict"] != "baseline"]
    groups = []
    for verdict in ("faster in every round", "slower in every round", "within noise"):
        names = [label(n) for n in others.index[others["verdict"] == verdict]]
        groups.append(f"{verdict}: {', '.join(names) if names else 'none'}")
    lines.append(f"\n**Speed** of the {len(others)} techniques, {'; '.join(groups)}.")
    base = summary[summary["verdict"] == "baseline"].iloc[0]
    noise = base["accuracy_high"] - base["accuracy_low"]
    worst = others["accuracy_change"].idxmin()
    drop = -others.loc[worst, "accuracy_change"]
    text = f"\n**Accuracy**: the baseline's own accuracy spans {noise:.3f} over the rounds' seeds. "
    if drop <= 0:
        text += "No technique lowered the mean accuracy."
    elif drop <= noise:
        text += (
            f"The largest mean drop, {drop:.3f} ({label(worst)}), is within that seed noise: "
            "no technique costs accuracy."
        )
    else:
        text += (
            f"{label(worst)} loses {drop:.3f} on average, more than that seed noise: it costs "
            "accuracy."
        )
    lines.append(text)
    return "\n".join(lines)


def plot_speedups(
    frame: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    accuracy: str = "test_accuracy",
) -> Figure:
    """Every round of a `compare_techniques` frame as a dot: the speedup over the same round's
    baseline (the line spans the spread, the bar marks the median) and the accuracy."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    names = list(dict.fromkeys(frame["technique"]))
    fig, (speed, acc) = plt.subplots(
        1, 2, figsize=(12, 1.2 + 0.5 * len(names)), sharey=True, layout="constrained"
    )
    for i, name in enumerate(names):
        runs = frame[frame["technique"] == name]
        for ax, values in ((speed, runs["speedup"]), (acc, runs[accuracy])):
            ax.hlines(i, values.min(), values.max(), color="tab:blue", alpha=0.5)
            ax.scatter(values, [i] * len(values), color="tab:blue", alpha=0.7, zorder=3)
            ax.plot([values.median()], [i], "|", color="black", markersize=14)
    speed.axvline(1.0, color="grey", ls="--")
    speed.set_yticks(range(len(names)), [labels.get(n, n) for n in names])
    speed.invert_yaxis()
    speed.set_xlabel("images/s over the same round's baseline (x)")
    acc.set_xlabel(accuracy.replace("_", " "))
    rounds = frame["round"].nunique()
    fig.suptitle(f"{rounds} interleaved rounds: one dot per round, | the median")
    return fig
