"""What notebook 05's runs show, in sentences chosen by the claims toolkit's verdicts.

    claims = transfer_claims(curve, per_class=32, majority=task.majority)
    display(Markdown(claims.markdown(profile="smoke")))
    claims.record()          # finetuned_minus_tfidf_low / _high / _verdict ..., *_learned

Every effect is the paired difference over seeds (`dlnb.claims.paired_effect`) at one size; a
baseline counts only when it learned (`dlnb.claims.learned` against the majority class), and a
network that did not fit its own training texts is flagged as possibly under-trained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dlnb import claims
from dlnb.recording import record

__all__ = [
    "TransferClaims",
    "confidence_summary",
    "error_summary",
    "order_task_summary",
    "own_data_summary",
    "transfer_claims",
    "verdicts_by_size",
]

#: How the notebook's methods are called in records: curve name -> short name.
METHODS = {
    "fine-tuned encoder": "finetuned",
    "TF-IDF": "tfidf",
    "from-scratch network": "scratch",
    "frozen probe": "probe",
}
HEADLINE = (
    "TF-IDF",
    "from-scratch network",
)  # the baselines the claim is about; the probe is context
FITS = 0.95  # a network whose last-epoch training accuracy is below this may be under-trained


def _scores(curve, per_class: int, method: str, column: str = "accuracy") -> np.ndarray:
    part = curve[(curve["per_class"] == per_class) & (curve["method"] == method)]
    return part.sort_values("seed")[column].to_numpy(dtype=float)


@dataclass(frozen=True)
class TransferClaims:
    """Fine-tuned minus each baseline at one size, which methods learned, which fit their data."""

    per_class: int
    ours: str
    effects: dict[str, claims.Effect]  # baseline name -> ours minus it
    learned: dict[str, claims.BaselineCheck]  # every method
    fits: dict[str, float]  # network -> lowest last-epoch training accuracy over seeds

    def headline_holds(self) -> bool:
        """Better than every headline baseline, each of which learned."""
        return all(
            self.effects[b].verdict == "better" and self.learned[b].learned
            for b in HEADLINE
            if b in self.effects
        )

    def _fit_lines(self) -> list[str]:
        lines = []
        for name, lowest in self.fits.items():
            if lowest >= FITS:
                lines.append(
                    f"{name} fits its training texts (last-epoch training accuracy at least "
                    f"{lowest:.2f} on every seed): more epochs would not help it, more data could."
                )
            else:
                lines.append(
                    f"{name} did not fit its training texts (last-epoch training accuracy down to "
                    f"{lowest:.2f}): it may be under-trained, which flatters the methods it is "
                    "compared with."
                )
        return lines

    def _effect_line(self, baseline: str, profile: str) -> str:
        effect = self.effects[baseline]
        line = effect.sentence()
        if not self.learned[baseline].learned:
            line += f" {baseline} did not learn, so this comparison proves nothing."
        elif not effect.resolved and profile == "smoke" and baseline in HEADLINE:
            line += " Unresolved in smoke: the full profile (more seeds, more test texts) gates it."
        return line

    def _conclusion(self) -> str:
        ours, n = self.ours, self.per_class
        if self.headline_holds():
            gains = " and ".join(
                f"{self.effects[b].diff:+.3f} over {b}" for b in HEADLINE if b in self.effects
            )
            return (
                f"**What the pretrained weights buy**: with {n} labelled texts per class, {ours} "
                f"beats both models that learn from these texts alone ({gains}; the intervals "
                "above exclude zero), and both of those models learned."
            )
        return (
            f"**This run does not show that {ours} beats the models that learn from these texts "
            f"alone at {n} per class**: see which comparison above is within noise or against a "
            "baseline that did not learn."
        )

    def _probe_line(self) -> str:
        probe = self.effects.get("frozen probe")
        if probe is None:
            return ""
        if probe.verdict == "better":
            return "Training every weight also beats reading the frozen encoder with a probe."
        if probe.verdict == "worse":
            return (
                "The frozen probe is ahead of fine-tuning here: training every weight on this "
                "few texts lost some of what the pretrained encoder knew."
            )
        return (
            "Fine-tuning and the frozen probe cannot be told apart here: what training every "
            "weight adds over a logistic regression on the frozen encoder's embeddings is too "
            "small for this run to resolve, and it costs far more compute."
        )

    def markdown(self, profile: str = "full") -> str:
        """The learned checks, fit checks, effects and conclusion as Markdown bullets."""
        checks = [c.sentence() for c in self.learned.values()]
        effects = [self._effect_line(b, profile) for b in self.effects]
        bullets = [*checks, *self._fit_lines(), *effects]
        body = "\n".join(f"- {line}" for line in bullets)
        return f"{body}\n\n{self._conclusion()} {self._probe_line()}".rstrip()

    def record(self) -> None:
        """Record each effect (`finetuned_minus_<baseline>_*`), each `<method>_learned` and
        `<network>_min_train_accuracy`, for the runner's gates."""
        for baseline, effect in self.effects.items():
            effect.record(f"{METHODS[self.ours]}_minus_{METHODS[baseline]}")
        for name, check in self.learned.items():
            record(f"{METHODS[name]}_learned", bool(check.learned))
            record(f"{METHODS[name]}_accuracy", check.mean)
        for name, lowest in self.fits.items():
            record(f"{METHODS[name]}_min_train_accuracy", lowest)


def transfer_claims(
    curve,
    per_class: int,
    majority: float,
    *,
    ours: str = "fine-tuned encoder",
    baselines: Sequence[str] = ("TF-IDF", "from-scratch network", "frozen probe"),
    margin: float = 0.05,
) -> TransferClaims:
    """The claims of a data-efficiency run at `per_class`: paired effects of `ours` over each
    baseline (on the seeds both ran), every method's check against `majority` (its interval's
    lower end must clear it by `margin`), and the fit of every method that reports
    `train_accuracy`."""
    effects = {}
    for baseline in baselines:
        effects[baseline] = claims.effect_from_frame(
            curve[curve["per_class"] == per_class], ours, baseline, "accuracy"
        )
    learned = {
        name: claims.learned(
            name, _scores(curve, per_class, name).tolist(), majority, margin=margin
        )
        for name in (*baselines, ours)
    }
    fits = {}
    if "train_accuracy" in curve.columns:
        for name in (*baselines, ours):
            values = _scores(curve, per_class, name, "train_accuracy")
            if len(values) and not np.isnan(values).all():
                fits[name] = float(np.nanmin(values))
    return TransferClaims(per_class, ours, effects, learned, fits)


def verdicts_by_size(curve, ours: str = "fine-tuned encoder", baselines: Sequence[str] = HEADLINE):
    """A table of `ours` minus each baseline at every size: difference, 95 % interval, verdict."""
    import pandas as pd

    rows = []
    for size in sorted(curve["per_class"].unique()):
        part = curve[curve["per_class"] == size]
        for baseline in baselines:
            effect = claims.effect_from_frame(part, ours, baseline, "accuracy")
            rows.append(
                {
                    "per class": int(size),
                    "baseline": baseline,
                    f"{ours} mean": round(effect.ours_mean, 3),
                    "baseline mean": round(effect.baseline_mean, 3),
                    "difference": round(effect.diff, 3),
                    "95% CI": f"{effect.low:+.3f} to {effect.high:+.3f}",
                    "verdict": effect.verdict,
                }
            )
    return pd.DataFrame(rows)


def _confidence_sentence(right: np.ndarray, sure: np.ndarray) -> str:
    """How sure a model is on its right and on its wrong answers."""
    if right.all() or not right.any():
        return ""
    on_right, on_wrong = float(sure[right].mean()), float(sure[~right].mean())
    text = (
        f" Its mean probability for the class it picks is {on_right:.2f} on its right answers "
        f"and {on_wrong:.2f} on its wrong ones"
    )
    if on_wrong >= 0.8:
        return (
            text + ": it is overconfident, so a high probability here does not mean a right answer."
        )
    return text + "."


def error_summary(
    targets: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    label_names: Sequence[str],
    probabilities: np.ndarray | None = None,
) -> str:
    """Accuracy, recall per class and the most frequent confusion of one model, as sentences;
    with its `probabilities` (texts x classes), how sure it is when right and when wrong."""
    y, p = np.asarray(targets), np.asarray(predictions)
    k = len(label_names)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y, p), 1)
    totals = matrix.sum(1)
    recall = ", ".join(
        f"{name} {matrix[c, c] / totals[c]:.2f}" if totals[c] else f"{name} (no test texts)"
        for c, name in enumerate(label_names)
    )
    errors = matrix - np.diag(matrix.diagonal())
    text = f"Accuracy {np.mean(y == p):.3f}. Recall per class: {recall}."
    if errors.sum() == 0:
        return text + " No test text is misclassified."
    true, pred = np.unravel_index(int(np.argmax(errors)), errors.shape)
    text += (
        f" The most frequent error: true *{label_names[int(true)]}* predicted "
        f"*{label_names[int(pred)]}* ({errors[true, pred]} of {errors.sum()} errors)."
    )
    if probabilities is not None:
        sure = np.asarray(probabilities)[np.arange(len(p)), p]
        text += _confidence_sentence(y == p, sure)
    return text


def own_data_summary(
    accuracy: float,
    macro_f1: float,
    majority: float,
    n_test: int,
    top_probability: float,
    n_classes: int,
) -> str:
    """What a quick fine-tune on a small file of your own can and cannot say, in numbers.

    Args:
        accuracy: test accuracy of the model trained on the file.
        macro_f1: its macro-averaged F1 on the same texts.
        majority: the accuracy of always answering the most frequent class.
        n_test: how many test texts the file's split held.
        top_probability: the largest class probability the model gave a new string.
        n_classes: how many classes the file has.

    The model "has started to commit" when that probability is at least halfway from a uniform
    guess to certainty.
    """
    stderr = math.sqrt(0.25 / max(n_test, 1))
    sentence = (
        f"On its {n_test} test texts: accuracy {accuracy:.3f}, macro F1 {macro_f1:.3f}, against "
        f"{majority:.3f} for always answering the majority class; one standard error on "
        f"{n_test} texts is up to {stderr:.2f}, so this says little about skill."
    )
    uniform = 1 / n_classes
    committed = (
        "it has started to commit"
        if top_probability >= (1 + uniform) / 2
        else "one epoch on a few dozen texts has barely moved the new head"
    )
    return (
        f"{sentence} The largest probability it gives a new string is {top_probability:.2f} "
        f"against {uniform:.2f} for a uniform guess: {committed}."
    )


def confidence_summary(
    correct: Sequence[bool] | np.ndarray, confidence: Sequence[float] | np.ndarray
) -> str:
    """Accuracy on texts whose annotators fully agreed (confidence 1.0) against the rest."""
    ok, conf = np.asarray(correct, dtype=bool), np.asarray(confidence, dtype=float)
    known = ~np.isnan(conf)
    if not known.any():
        return "The annotators' confidence is not known for these texts."
    top, rest = known & (conf >= 0.999), known & (conf < 0.999)

    def part(mask: np.ndarray) -> str:
        return f"{ok[mask].mean():.3f} ({mask.sum()} texts)" if mask.any() else "no texts"

    return (
        f"Accuracy on test texts whose annotators fully agreed (confidence 1.0): {part(top)}; "
        f"with a lower confidence: {part(rest)}; confidence unknown: {(~known).sum()} texts."
    )


def _accuracy_interval(correct: np.ndarray) -> tuple[float, float, float]:
    """Accuracy and its 95 % Wilson interval over independent test examples."""
    n, k = correct.size, float(correct.sum())
    p, z = k / n, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, centre - half, centre + half


def order_task_summary(
    correct: Mapping[str, Sequence[bool] | np.ndarray], ours: str, chance: float = 0.5
) -> tuple[str, dict[str, claims.Effect]]:
    """Notebook 03's result: each model's test accuracy with its 95 % interval against chance,
    and `ours` minus each other model, paired over the same test examples (bootstrap).

    Returns the Markdown bullets and the effects (to record), keyed by the other model's name.
    """
    if ours not in correct:
        raise ValueError(f"{ours!r} is not one of the models {list(correct)}.")
    lines, effects = [], {}
    for name, values in correct.items():
        ok = np.asarray(values, dtype=float)
        acc, low, high = _accuracy_interval(ok)
        where = (
            f"at chance: its interval contains {chance:g}"
            if low <= chance <= high
            else (f"above chance ({chance:g})" if low > chance else f"below chance ({chance:g})")
        )
        lines.append(
            f"{name}: {acc:.3f} (95 % CI {low:.3f} to {high:.3f}, {ok.size} test "
            f"sequences), {where}."
        )
    base = np.asarray(correct[ours], dtype=float)
    for name, values in correct.items():
        if name != ours:
            effect = claims.bootstrap_effect(
                base.tolist(),
                np.asarray(values, dtype=float).tolist(),
                names=(ours, name),
                metric="test accuracy",
            )
            effects[name] = effect
            lines.append(effect.sentence())
    return "\n".join(f"- {line}" for line in lines), effects
