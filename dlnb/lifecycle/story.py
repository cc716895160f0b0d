"""What notebook 09's lifecycle run says, in sentences chosen by verdicts, and its drift figure.

Each function returns Markdown built from the numbers it is given. Effects come from
`dlnb.claims` (paired over seeds, 95 % intervals): tuning against the defaults, the old model's
score on later windows against its own era (harm, which a monitor of the inputs cannot see),
retraining after drift against the control run without drift. Drift in the inputs and harm to the
model are kept apart in the words, and a model barely above the majority class is called that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from dlnb import claims
from dlnb.deploy.monitor import DriftThresholds, plot_drift, window_alerts

__all__ = [
    "alerts_table",
    "drift_summary",
    "periods_summary",
    "plot_drift_panels",
    "reference_note",
    "retrain_summary",
    "study_summary",
    "tamper_summary",
    "tuning_summary",
]

UNRESOLVED_IN_SMOKE = (
    "This is **unresolved in smoke**: too few films and seeds to decide it; the full profile "
    "measures it again with more films, seeds and trials."
)


TUNING_LEADS = {
    "better": "Tuning helped",
    "worse": "Tuning did not help: the defaults did better",
    "equivalent": "Tuning made no practical difference",
    "within noise": "Tuning did not measurably help",
    "unresolved": "Tuning's effect is unresolved",
}
HARM_WORDS = {
    "worse": "measurable harm",
    "better": "no harm: the old model scores higher",
    "equivalent": "no practical harm",
}
RETRAIN_LEADS = {
    "better": "Retraining after drift gains more than retraining without drift",
    "worse": "Retraining after drift gains less than retraining without drift",
    "within noise": "This run cannot tell the gain after drift from the gain of retraining "
    "without drift",
    "unresolved": "The retraining effect is unresolved",
}


def _cap(sentence: str) -> str:
    """The sentence with its first letter in upper case (effect sentences start with a name)."""
    return sentence[:1].upper() + sentence[1:]


def periods_summary(periods: pd.DataFrame) -> str:
    """How the films of the first and last period differ (median votes, short films, the share
    rated 7 or more): the inputs move, and so does the class to predict."""
    a, z = periods.iloc[0], periods.iloc[-1]
    top = periods.loc[periods["median votes"].idxmax()]
    return (
        f"From {a['period']} to {z['period']} the median number of votes goes from "
        f"{a['median votes']:.0f} to {z['median votes']:.0f} (highest in the {top['period']}: "
        f"{top['median votes']:.0f}), the share of short films from {a['short films']:.1%} to "
        f"{z['short films']:.1%}, and the share rated 7 or more from {a['rated >= 7']:.1%} to "
        f"{z['rated >= 7']:.1%}: the inputs move, and so does the share of the class to predict."
    )


def _setting(key: str, value: object) -> str:
    return f"`{key}={value:.3g}`" if isinstance(value, float) else f"`{key}={value}`"


def study_summary(history: pd.DataFrame, best: Mapping[str, object]) -> str:
    """The study's trials, and what the best trial changed against trial 0 (the defaults) on the
    one validation split the study saw."""
    counts = history["state"].value_counts()
    done = history[history["state"] == "COMPLETE"]
    top = done.loc[done["value"].idxmin()]
    defaults = history.loc[history["number"] == 0, "value"].iloc[0]
    settings = ", ".join(_setting(k, v) for k, v in best.items())
    change = (
        "no trial beat them"
        if int(top["number"]) == 0
        else (
            f"the best, trial {int(top['number'])}, {top['value']:.4f} "
            f"({top['value'] - defaults:+.4f}) with {settings}"
        )
    )
    return (
        f"The study ran {len(history)} trials: {counts.get('COMPLETE', 0)} complete and "
        f"{counts.get('PRUNED', 0)} pruned. Trial 0, the model's default hyperparameters, reached "
        f"validation log loss {defaults:.4f}; {change}. That is one validation split of one seed: "
        "whether the tuned hyperparameters beat the defaults on films neither saw is measured "
        "below, over seeds."
    )


def tuning_summary(
    effect: claims.Effect,
    ranking: claims.BaselineCheck,
    accuracy: claims.BaselineCheck,
    n_films: int,
    smoke: bool,
) -> str:
    """Tuning against the defaults (`effect`: tuned first), then whether the model learned: its
    ranking against the majority class's ROC AUC of 0.5, and its accuracy against the majority
    rate, called "barely above" when the margin is not met."""
    lines = [
        f"**{TUNING_LEADS[effect.verdict]}** on {n_films:,} unseen films of the training era per seed. "
        f"{_cap(effect.sentence())}"
    ]
    if smoke and not effect.resolved:
        lines.append(UNRESOLVED_IN_SMOKE)
    lines.append(f"Did the model learn? In ranking films, yes: {ranking.sentence()}")
    lines.append(_accuracy_line(accuracy))
    return "\n\n".join(lines)


def _accuracy_line(accuracy: claims.BaselineCheck) -> str:
    """Accuracy against the majority rate: clearly above, barely above (margin not met), or not."""
    gap = accuracy.mean - accuracy.reference
    shown = (
        f"{accuracy.mean:.3f} against {accuracy.reference:.3f} ({gap:+.3f}; 95 % CI from "
        f"{accuracy.low:.3f}, {accuracy.n} seeds)"
    )
    if accuracy.learned:
        return f"In accuracy it is clearly above {accuracy.reference_name}: {shown}."
    if gap > 0:
        return (
            f"In accuracy it is **barely above** {accuracy.reference_name}: {shown}; the worse "
            f"end of that interval is {accuracy.low - accuracy.reference:+.3f} above it, short of "
            f"the {accuracy.margin:g} that would count as learning. With "
            f"{accuracy.reference:.0%} of films rated below 7, a 0.5 threshold almost always "
            "answers 'below 7': the ranking (ROC AUC) is what this model offers, not its accuracy."
        )
    return f"In accuracy it does **not** beat {accuracy.reference_name}: {shown}."


def tamper_summary(labels_verified: bool, edited_card_verified: bool) -> str:
    """What the content hash caught: swapped label names, a metric typed into the card."""
    swap = "is caught" if not labels_verified else "is NOT caught"
    typed = "is caught too" if not edited_card_verified else "is NOT caught"
    return (
        f"Swapping the label names in the metadata {swap} by the content hash. A better metric "
        f"typed into the card by hand {typed}: the hash covers the weights, the metadata and the "
        "card's own fields, so a card edited after the model was saved no longer verifies. "
        "(Anyone can recompute a hash, so this catches accidents and careless edits, not an "
        "attacker; sign the files or keep them in a registry you control for that.)"
    )


def _triggers(stream: pd.DataFrame, window: int, thresholds: DriftThresholds) -> str:
    """The features that raised the window's alert, with the numbers against their thresholds."""
    rows = stream[(stream["window"] == window) & stream["alert"]]
    parts = []
    for r in rows.itertuples():
        close = r.ks_statistic < 1.5 * thresholds.ks_statistic
        parts.append(
            f"{r.feature} (KS distance {r.ks_statistic:.3f} against the "
            f"{thresholds.ks_statistic:g} floor{', just above it' if close else ''}; "
            f"p = {r.ks_pvalue:.1e}; PSI {r.psi:.3f} against {thresholds.psi:g})"
        )
    return "; ".join(parts)


def alerts_table(stream: pd.DataFrame, periods: Sequence[str]) -> pd.DataFrame:
    """One row per window (indexed by its period): whether it alerted, on which features, and
    every alerting feature's reason in full."""
    alerts = window_alerts(stream).assign(period=list(periods))
    alerts["reasons"] = [
        " | ".join(f"{r.feature}: {r.reason}" for r in g[g["alert"]].itertuples())
        for _, g in stream.groupby("window")
    ]
    return alerts.set_index("period").drop(columns="window")


def drift_summary(
    stream: pd.DataFrame,
    periods: Sequence[str],
    thresholds: DriftThresholds,
    harm: Mapping[str, claims.Effect],
    seed: int,
) -> str:
    """Drift in the inputs (which window alerted first, on what, by how much) and, kept apart,
    harm to the model: `harm` maps a period to the old model's score there against its own era,
    paired over seeds; `seed` names the stream the monitor watched."""
    by_window = stream.groupby("window")
    alerted = by_window["alert"].any()
    max_psi = by_window["psi"].max()
    first = int(alerted[alerted].index.min()) if alerted.any() else None
    lines = [
        f"On seed {seed}'s stream, unseen films of the training era raise "
        f"{'an alert' if alerted.iloc[0] else 'no alert'} (largest PSI {max_psi.iloc[0]:.3f})."
    ]
    if first is None:
        lines.append("No later window raised an alert either.")
    else:
        lines.append(
            f"**The first alert, in the {periods[first]}, is drift in the inputs**: raised by "
            f"{_triggers(stream, first, thresholds)}. The largest PSI of any later window is "
            f"{max_psi.iloc[1:].max():.3f} (threshold {thresholds.psi:g}). An alert says the "
            "inputs no longer look like the training films; it does not say the model got worse."
        )
    lines.append(
        "Harm to the model is measured here only because the ratings are known (in production "
        "they arrive later): the old model's ROC AUC on each period against its own era, paired "
        "over seeds."
    )
    bullets = [
        f"- {period}: **{HARM_WORDS.get(effect.verdict, 'no measurable harm')}**. "
        f"{_cap(effect.sentence())}"
        for period, effect in harm.items()
    ]
    return "\n\n".join(lines) + "\n\n" + "\n".join(bullets)


def _opportunity(
    first: pd.DataFrame, drift: claims.Effect, harm: Mapping[str, claims.Effect]
) -> str:
    """Why a gain from retraining where section 5 found no harm is no contradiction."""
    periods = sorted(set(first["period"]))
    if len(periods) != 1 or periods[0] not in harm or drift.verdict != "better":
        return ""
    period, hurt = periods[0], harm[periods[0]]
    flagged = sorted({f for d in first.get("drifted", []) for f in d})
    shift = f"the flagged shift in {' and '.join(flagged)}" if flagged else "the flagged shift"
    if hurt.verdict == "worse":
        return (
            f"On {period} films the old model was measurably worse than on its own era (section "
            "5): retraining there answers a measured loss, and the control below says how much "
            "of the gain any retraining would bring."
        )
    return (
        f"No measurable harm on {period} films (section 5) and a gain of {drift.diff:+.3f} from "
        f"retraining there do not contradict each other: the gain is an opportunity, not a "
        f"repair (a model trained on {period} films ranks them better than one trained on older "
        f"films). Nothing here shows that {shift} caused it: the control below compares the "
        "gain only with retraining where nothing drifted."
    )


def retrain_summary(
    first: pd.DataFrame,
    decisions: pd.DataFrame,
    effects: Mapping[str, claims.Effect],
    min_gain: float,
    smoke: bool,
    harm: Mapping[str, claims.Effect] | None = None,
) -> str:
    """The retraining run against its control: `first` holds each seed's first retraining,
    `effects` the candidate's gain after drift ("drift"), the same retraining where nothing
    drifted ("control"), and the first minus the second ("versus"); `harm` (the old model on a
    period against its own era) explains a gain where no harm was measured."""
    seeds = decisions["seed"].nunique()
    drift, control, versus = effects["drift"], effects["control"], effects["versus"]
    promoted = int((decisions["action"] == "promoted").sum())
    kept = int((decisions["action"] == "kept").sum())
    lines = [
        f"On {len(first)} of {seeds} seeds an alert led to a retraining, first in the "
        f"{', '.join(sorted(set(first['period'])))}. On the held-out films of that window: "
        f"{drift.sentence()}",
        _opportunity(first, drift, harm or {}),
        f"The control, the same retraining on unseen films of the training era (no drift): "
        f"{control.sentence()}",
        f"**{RETRAIN_LEADS[versus.verdict]}.** {_cap(versus.sentence())}",
    ]
    if smoke and not versus.resolved:
        lines.append(UNRESOLVED_IN_SMOKE)
    lines.append(
        f"Over all windows and seeds the policy promoted {promoted} candidates and kept out "
        f"{kept} for a gain below {min_gain:g}, a margin it states rather than a significance "
        "test."
    )
    seconds = first["seconds"].median()
    lines.append(
        f"From alert to verdict a step took {seconds:.1f} s (median, training included). A team "
        "that commits to a time-to-retrain target, say 48 hours from an alert to a promoted or "
        "rejected candidate, spends almost all of it waiting for the new labels (assumed known "
        "at once here), not on this step."
    )
    return "\n\n".join(line for line in lines if line)


def reference_note(
    monitor_alerts: Sequence[bool], decisions: pd.DataFrame, periods: Sequence[str]
) -> str:
    """Why the retraining steps (`decisions` of one seed) can alert on other windows than the
    monitor of section 5 (`monitor_alerts`, one per window, against the first training films):
    after a promotion, later windows are compared with the promoted model's training films."""
    steps = decisions.sort_values("step")
    promoted = steps[steps["action"] == "promoted"]
    parts = []
    for d in steps.itertuples():
        earlier = promoted[promoted["step"] < d.step]
        step_alerted, period = d.action != "no_alert", periods[d.step - 1]
        if step_alerted == bool(monitor_alerts[d.step - 1]) or earlier.empty:
            continue
        last = int(earlier["step"].iloc[-1])
        now = f"found {d.reason}" if not step_alerted else f"alerted ({d.reason}) where it did not"
        parts.append(
            f"Section 5's monitor {'flagged' if not step_alerted else 'compared'} the {period} "
            f"against the first training films, but step {d.step} here {now}: the promotion at "
            f"step {last} made the films its candidate was trained on ({periods[last - 1]}) the "
            "new reference."
        )
    if parts:
        return " ".join(parts)
    if promoted.empty:
        return (
            "No candidate was promoted, so every step compared its window with the first "
            "training films, as section 5's monitor did."
        )
    return (
        "The steps alerted on the same windows as section 5's monitor, although each promotion "
        "made the promoted model's training films the new reference."
    )


def _ring_alerts(ax, stream: pd.DataFrame, metric: str, reason: str) -> None:
    """A red ring on every (window, feature) point whose alert `reason` names this test."""
    hit = stream[stream["alert"] & stream["reason"].str.contains(reason)]
    ax.scatter(
        hit["window"],
        hit[metric],
        s=160,
        facecolors="none",
        edgecolors="red",
        linewidths=1.5,
        zorder=5,
        label="raised the alert",
    )


def plot_drift_panels(
    stream: pd.DataFrame,
    thresholds: DriftThresholds,
    periods: Sequence[str],
    shift_at: int = 1,
):
    """PSI and KS distance per feature over the windows (named by `periods`), a ring on every
    point that raised an alert, one legend right of both panels; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(13, 3.8))
    panels = (
        ("psi", thresholds.psi, "PSI", "PSI"),
        ("ks_statistic", thresholds.ks_statistic, "KS distance", "KS"),
    )
    for ax, (metric, threshold, label, reason) in zip(axs, panels, strict=True):
        plot_drift(stream, metric, threshold, shift_at=shift_at, ax=ax)
        ax.get_legend().remove()
        for line in ax.get_lines():  # one legend serves both panels: name the threshold generically
            if line.get_label().startswith("threshold"):
                line.set_label("alert threshold of the panel")
        _ring_alerts(ax, stream, metric, reason)
        ax.set_xticks(range(len(periods)), list(periods))
        ax.set(
            xlabel="live window",
            ylabel=label,
            title=f"{label} per feature, against the training films",
        )
    handles, names = axs[1].get_legend_handles_labels()
    fig.legend(
        handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False
    )
    fig.tight_layout()
    return fig
