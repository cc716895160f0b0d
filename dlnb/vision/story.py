"""The sentences of the transfer-learning lesson (notebook 04), computed from its results.

Every sentence that states an effect is built on a `dlnb.claims.Effect` (a paired difference over
seeds with its 95 % interval) and worded by its verdict, never by the sign of a mean; a comparison
with a baseline that did not learn says so first. Each function returns Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from dlnb.claims import BaselineCheck, Effect

if TYPE_CHECKING:
    import pandas as pd

#: How the transfer methods are called in sentences and tables.
METHOD_NAMES = {
    "pixels": "raw pixels",
    "scratch": "LeNet-5 from scratch",
    "probe": "linear probe",
    "fine_tune": "fine-tuned",
}


def per_class(n: int, what: str = "labelled example") -> str:
    """'1 labelled example per class', '10 labelled examples per class'."""
    return f"{n} {what}{'s' if n != 1 else ''} per class"


def said(item: Effect | BaselineCheck) -> str:
    """The item's own sentence, starting with a capital letter (it opens a sentence here)."""
    text = item.sentence()
    return text[:1].upper() + text[1:]


def _verdict_words(effect: Effect, better: str, worse: str, level: str) -> str:
    """The clause for an effect's verdict: `better`, `worse` or `level` (within noise)."""
    return {"better": better, "worse": worse}.get(effect.verdict, level)


def source_summary(about: Mapping, target_classes: Sequence[str]) -> str:
    """Where the source network comes from, how good it is on its own digits, and why it cannot
    name the target's classes."""
    digits = ", ".join(str(d) for d in about["digits"])
    how = (
        "loaded from the cache"
        if about.get("cached")
        else f"trained now in {about['train_seconds']:.0f} s and cached"
    )
    return (
        f"**The source:** LeNet-5 trained on the {about['train_images']:,} MNIST training images "
        f"of the digits {digits} ({how}); it reads MNIST's test images of those digits with "
        f"{about['test_accuracy']:.3f} accuracy. Its last layer has {len(about['digits'])} "
        f"outputs, one per digit it saw, so it cannot answer {', '.join(target_classes)}: "
        "whatever it brings to the new digits has to come from its features, not its labels."
    )


def layer_summary(effects: Mapping[str, Effect], size: int) -> str:
    """What the layer probes show at `size` per class: pretraining against random weights of the
    same layers, the pretrained convolutions against pixels, and what depth costs.

    `effects` holds "pretraining" (pretrained vs random convolutions), "over_pixels" (pretrained
    convolutions vs raw pixels) and "depth" (the last hidden layer vs the convolutions); with
    "random_depth" (the same two layers with random weights) and "pretraining_fc2" (pretrained vs
    random last hidden layer), the depth effect is read against the random weights' own.
    """
    pre, pixels, depth = effects["pretraining"], effects["over_pixels"], effects["depth"]
    first = _verdict_words(
        pre,
        "what the source learned on its digits carries over to digits it never saw",
        "the source's weights are worse for the new digits than random ones",
        "this run cannot tell the source's weights from random ones on the new digits",
    )
    deep = _verdict_words(
        depth,
        "The last hidden layer carries more than the convolutions",
        "The last hidden layer carries less than the convolutions",
        "The last hidden layer and the convolutions are level",
    )
    text = f"With {per_class(size)}, {first}. {said(pre)} {said(pixels)}\n\n{deep}. {said(depth)}"
    if "random_depth" in effects and "pretraining_fc2" in effects:
        rnd, fc2 = effects["random_depth"], effects["pretraining_fc2"]
        same = _verdict_words(
            rnd,
            "With random weights the last hidden layer carries more",
            "With random weights the last hidden layer loses too, so part of the drop comes from "
            "the architecture itself, not from what the source learned",
            "With random weights this run cannot tell the two layers apart",
        )
        text += (
            f" {same}: {rnd.sentence()} What the source's training adds at a layer is the "
            "difference from the same layer with random weights (one random initialisation, "
            f"paired over the same draws): at the convolutions {pre.diff:+.3f} (above); at the "
            f"last hidden layer, {fc2.sentence()}"
        )
    return text + " So the lesson below keeps the source's convolutions and gives them a new head."


def baselines_summary(checks: Mapping[str, BaselineCheck]) -> str:
    """One line per baseline: did it learn (above the majority class by its margin)?"""
    return "\n".join(f"- {said(check)}" for check in checks.values())


def transfer_summary(
    headline: Mapping[int, Effect],
    fine_tune: Mapping[int, Effect],
    checks: Mapping[str, BaselineCheck],
    smoke: bool,
) -> str:
    """The main comparison, per size: the best pretrained method against the strongest baseline
    (`headline`: size -> effect, each side picked on validation), then fine-tuning against the
    probe; baselines that did not learn and results smoke cannot resolve are said plainly."""
    lines = []
    failed = [c.name for c in checks.values() if not c.learned]
    if failed:
        lines.append(
            f"**{' and '.join(failed)} did not learn**, so the comparisons below against "
            "it prove nothing about pretraining."
        )
    for size, effect in headline.items():
        word = _verdict_words(
            effect, "pretraining pays", "pretraining costs accuracy", "no difference resolved"
        )
        note = (
            " (unresolved in smoke: the full profile, with more seeds, gates it)"
            if smoke and not effect.resolved
            else ""
        )
        lines.append(f"- **{per_class(size)}: {word}{note}.** {said(effect)}")
    for size, effect in fine_tune.items():
        lines.append(f"- **Fine-tuning against the probe, {per_class(size)}:** {said(effect)}")
    return "\n".join(lines)


def tuning_summary(report: pd.DataFrame, pretrained: Sequence[str]) -> str:
    """Which chosen settings lie at an end of their grid, and whom that may favour."""
    edge = report[report["best only at an edge"]]
    if edge.empty:
        return (
            "On this seed every setting chosen on the validation set lies inside its grid. The "
            "logistic regressions choose C afresh on every seed, and on other seeds their choice "
            "can sit at an end of the grid: this table shows one seed, not all."
        )
    lines = []
    for (method, size), row in edge.iterrows():
        who = (
            "only the pretrained side can lose by this"
            if method in pretrained
            else "this baseline may be stronger than measured"
        )
        lines.append(
            f"- {METHOD_NAMES.get(method, method)}, {per_class(size)}: its best "
            f"{row.setting} ({row.chosen:g}) is an end of its grid; {who}."
        )
    return "Settings chosen at an end of their grid:\n" + "\n".join(lines)


def longer_training_summary(change: Effect, picked: Sequence[str]) -> str:
    """What twice the optimizer steps did to the from-scratch network (paired over seeds), and
    which baseline the validation set picked as the strongest on each seed (`picked`)."""
    moved = {
        "better": "**The baseline was still improving.**",
        "worse": "More steps made the baseline worse (it fits its few images ever more closely).",
    }.get(change.verdict, "Twice the steps did not change the baseline measurably.")
    counts = {name: picked.count(name) for name in dict.fromkeys(picked)}
    listed = ", ".join(f"{name} on {n} of {len(picked)}" for name, n in counts.items())
    return (
        f"{moved} {said(change)}\n\nThe headline below is stated against the **strongest "
        "baseline**: on each seed, whichever baseline run (raw pixels, from scratch, from "
        "scratch with twice the steps) scored highest on the validation set, a tie going to the "
        f"longer run. Picked: {listed}."
    )


def far_summary(effects: Mapping[str, Effect], size: int, image_size: int) -> str:
    """The ImageNet backbone's features against the digit source's and against pixels, on the same
    target and probe, and what the comparison cannot separate.

    `effects` holds "near_vs_far" (digit-source convolutions vs ImageNet features) and
    "far_vs_pixels" (ImageNet features vs raw pixels).
    """
    near, far = effects["near_vs_far"], effects["far_vs_pixels"]
    return (
        f"Probed the same way, on the same new digits and the same draws of {per_class(size)}: "
        f"{near.sentence()} {said(far)}\n\n"
        "What this compares is two whole pretrained networks: their source data (digits 0-4 or "
        "ImageNet's photographs), their architecture (LeNet-5's 400 convolutional features or "
        f"EfficientNet-Lite0's 1,280) and their input (28 px digits as drawn, or upscaled to "
        f"{image_size} px where the network was trained at 224) all differ at once. It shows "
        "which network is the better starting point here; it cannot say which of those "
        "differences is the reason."
    )


def mistakes_summary(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], top: int = 3
) -> str:
    """How many test images are wrong, and the most frequent confusions (true -> predicted)."""
    k = len(classes)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    np.fill_diagonal(counts, 0)
    pairs = sorted(
        ((counts[t, p], t, p) for t in range(k) for p in range(k) if counts[t, p]), reverse=True
    )
    wrong = int(counts.sum())
    if not pairs:
        return f"All {len(y_true):,} test images are classified correctly."
    listed = ", ".join(
        f"{classes[t]} → {classes[p]} ({n} of {int((np.asarray(y_true) == t).sum())})"
        for n, t, p in pairs[:top]
    )
    return (
        f"{wrong:,} of {len(y_true):,} test images are misclassified; the most frequent "
        f"confusions (true → predicted): {listed}."
    )


def folder_summary(check: BaselineCheck, per_class_images: int, reload_diff: float) -> str:
    """Section 'your own folder': did the model trained from the folder learn, and did it survive
    a save and a load?"""
    learned = f"With {per_class(per_class_images, 'image')}, {check.sentence()}"
    kept = (
        "The reloaded model gives exactly the trained one's probabilities."
        if reload_diff == 0
        else f"The reloaded model's probabilities differ from the trained one's by at most "
        f"{reload_diff:.1e}."
    )
    return f"{learned} {kept}"


def run_note(
    profile: str,
    device: str,
    seeds: Sequence[int],
    sizes: Sequence[int],
    probe_seeds: Sequence[int],
    probe_sizes: Sequence[int],
) -> str:
    """Which profile ran where, what it measures, and what a smoke run on a CPU cannot show."""
    listed = ", ".join(str(n) for n in sizes)
    ran = (
        f"**This run:** the {profile} profile on {device}. The linear probes use "
        f"{len(probe_seeds)} seeds at {', '.join(str(n) for n in probe_sizes)} labelled examples "
        f"per class; the networks (trained from scratch and fine-tuned) {len(seeds)} seeds at "
        f"{listed} per class."
    )
    if profile != "smoke":
        return ran
    return (
        f"{ran} Smoke is sized for a laptop CPU: with {len(seeds)} seeds a 95 % interval is wide, so "
        "an effect of a few points between networks can come out unresolved here, and the text "
        "says so where it does. The full profile (a GPU, more seeds, sizes from 1 to 20 per "
        "class, twice the steps, every test digit) is designed to resolve them (not yet run on a "
        "GPU), and the gates on those claims sit in the full profile."
    )
