"""What a tabular comparison says, in sentences chosen by verdicts (notebook 02's text).

Every function returns Markdown built from numbers it is given: effects with their 95 % intervals
(`dlnb.claims`), epoch-cap checks and baseline checks. A claim is worded by its verdict (better,
equivalent, within noise, worse), never by the sign of a mean; a comparison that rests on a
capped run or on a baseline that did not learn says so before the claim; in the smoke profile an
unresolved claim is called unresolved, and the full profile gates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from dlnb import claims
from dlnb.tabular.fairness import Audit, small_groups
from dlnb.tabular.figures import NAMES
from dlnb.tabular.models import DEFAULTS
from dlnb.tabular.results import Results
from dlnb.tabular.verdicts import margin_over_baseline

UNRESOLVED_IN_SMOKE = (
    "This is **unresolved in smoke**: the smoke tables are too small to decide it; the full "
    "profile measures it again on the full tables with more seeds."
)


def _value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def fixed_settings_note(overrides: Mapping[str, Mapping[str, object]], why: str) -> str:
    """Which hyperparameters this profile fixes instead of tuning, against each model's default,
    and `why`; an empty string when nothing is fixed."""
    if not overrides:
        return ""
    parts = []
    for model, fixed in overrides.items():
        default = DEFAULTS.get(model, {})
        settings = ", ".join(
            f"`{k}={_value(v)}`" + (f" (default {_value(default[k])})" if k in default else "")
            for k, v in fixed.items()
        )
        parts.append(f"{NAMES.get(model, model)} fixed at {settings}")
    return f"In this profile: {'; '.join(parts)}. {why}"


def left_out_note(models: Sequence[str], why: str) -> str:
    """A sentence naming the models this profile leaves out, and why; empty when none is."""
    if not models:
        return ""
    names = ", ".join(NAMES.get(m, m) for m in models)
    verb = "is" if len(models) == 1 else "are"
    return f"In this profile {names} {verb} left out of this comparison: {why}"


def _preconditions(caps: Sequence[claims.CapCheck], checks: Sequence[claims.BaselineCheck]) -> list:
    """The cap flags and baseline checks that must be read before the claim."""
    lines = [f"- {c.sentence()}" for c in caps]
    lines += [f"- {c.sentence()}" for c in checks]
    return lines


def _caveats(caps: Sequence[claims.CapCheck], checks: Sequence[claims.BaselineCheck]) -> str:
    """What weakens a claim: capped runs, a model that did not learn."""
    out = []
    if any(c.any_capped for c in caps):
        out.append(
            "Some deep runs stopped at their epoch cap (above): they may be under-trained, so "
            "this comparison may flatter XGBoost."
        )
    failed = [c.name for c in checks if not c.learned]
    if failed:
        out.append(f"{', '.join(failed)} did not learn enough: comparisons with it prove nothing.")
    return " ".join(out)


def real_table_summary(
    results: Results,
    effect: claims.Effect,
    caps: Sequence[claims.CapCheck],
    checks: Sequence[claims.BaselineCheck],
    smoke: bool,
) -> str:
    """Section 2's verdict: convergence and learning checks first, then XGBoost against the best
    deep model as a paired effect over seeds (`effect`: XGBoost first, on the error)."""
    table, deep = results.frame["dataset"].iloc[0], effect.baseline
    leads = {
        "better": f"On {table}, XGBoost beats the best deep model ({deep}).",
        "worse": f"On {table}, the best deep model ({deep}) beats XGBoost.",
        "within noise": f"On {table}, this run cannot tell XGBoost and the best deep model "
        f"({deep}) apart.",
        "unresolved": f"On {table}, there are too few seeds to compare XGBoost and {deep}.",
    }
    lines = ["Before the claim, did every model train to the end and learn?", ""]
    lines += _preconditions(caps, checks)
    lines += ["", f"**{leads.get(effect.verdict, leads['within noise'])}** {effect.sentence()}"]
    caveat = _caveats(caps, checks)
    if caveat:
        lines.append(caveat)
    if smoke and not effect.resolved:
        lines.append(UNRESOLVED_IN_SMOKE)
    return "\n".join(lines)


def _fixed_models(fixed: Mapping[str, Mapping[str, object]] | None, names: set[str]) -> list:
    """The readable names of the models in `names` whose settings `fixed` holds."""
    return [NAMES.get(m, m) for m in (fixed or {}) if NAMES.get(m, m) in names]


def _sightings(results: Results, min_levels: int = 50) -> str:
    """How often the training rows show each level of the high-cardinality categoricals: "each
    `s` level about 2.8 times and each `d` level about 7.2 times" ('' without such columns)."""
    table = results.source
    if table is None:
        return ""
    n_train = int(results.frame["n_train"].max())
    levels = {c: table.X[c].nunique() for c in table.categorical}
    parts = [
        f"each `{c}` level about {n_train / k:.1f} times"
        for c, k in levels.items()
        if k >= min_levels
    ]
    return " and ".join(parts)


def _ablation_limits(
    results: Results, effect: claims.Effect, fixed: Mapping[str, Mapping[str, object]] | None
) -> str:
    """What the ablation at this size cannot show: how rarely each ID is seen, the shrunk
    networks, and a small edge that every seed leans towards ('' when there is nothing to say)."""
    parts = []
    seen = _sightings(results)
    if seen:
        parts.append(
            f"{int(results.frame['n_train'].max()):,} training rows show {seen}: too few "
            "sightings to learn a vector per ID, which is where embeddings should pay."
        )
    shrunk = _fixed_models(fixed, {effect.ours, effect.baseline})
    if shrunk:
        parts.append(f"{' and '.join(shrunk)} are fixed at this profile's small sizes (above).")
    pairs = effect.per_pair
    if pairs and (all(d > 0 for d in pairs) or all(d < 0 for d in pairs)):
        side = effect.ours if pairs[0] > 0 else effect.baseline
        parts.append(
            f"Every seed put {side} ahead (by {min(abs(d) for d in pairs):.3f} to "
            f"{max(abs(d) for d in pairs):.3f}): an edge smaller than the band may be real, and "
            "this run does not resolve it."
        )
    return f"What this size cannot show: {' '.join(parts)}" if parts else ""


def _ablation_claim(results: Results, effect: claims.Effect) -> str:
    """The ablation's bold lead (by verdict), its numbers, the band against the margin over the
    baseline, and both networks' sizes."""
    sizes = results.largest().set_index("model")["params_mean"]
    band, margin = effect.band, margin_over_baseline(results)
    share = f"{band / margin:.0%} of" if margin > 0 else "more than"
    leads = {
        "better": "the MLP with embeddings beats the one-hot MLP",
        "worse": "the one-hot MLP beats the MLP with embeddings: embeddings did not help here",
        "equivalent": f"no difference larger than {band:g} accuracy between embeddings and "
        "one-hot encoding at this size",
        "within noise": "this run cannot tell embeddings from one-hot encoding, nor rule out a "
        f"difference of {band:g}",
        "unresolved": "there are too few seeds to compare embeddings and one-hot encoding",
    }
    claim = (
        f"{effect.ours} {effect.ours_mean:.3f} against {effect.baseline} "
        f"{effect.baseline_mean:.3f}, {effect.interval()}: the interval lies inside +-{band:g}."
        if effect.verdict == "equivalent"
        else effect.sentence()
    )
    return (
        f"**On {results.frame['dataset'].iloc[0]}, {leads[effect.verdict]}.** {claim} The band "
        f"of +-{band:g} is {share} the {margin:.3f} by which the weakest model beats the "
        f"{results.name('majority')}: it rules out only differences of that order. The embedding "
        f"MLP has {sizes.get('emb_mlp', float('nan')):,.0f} parameters, the one-hot MLP "
        f"{sizes.get('mlp', float('nan')):,.0f}."
    )


def ablation_summary(
    results: Results,
    effect: claims.Effect,
    checks: Sequence[claims.BaselineCheck],
    caps: Sequence[claims.CapCheck],
    smoke: bool,
    fixed: Mapping[str, Mapping[str, object]] | None = None,
) -> str:
    """Section 3's verdict: embeddings against one-hot (`effect`: embeddings first), after the
    learning and cap checks; a "no difference" is stated against the band and the band against
    the margin the models gain over the baseline, with what this size (and the hyperparameters
    `fixed` by the profile) cannot show, and each network's size."""
    lines = [*_preconditions(caps, checks), "", _ablation_claim(results, effect)]
    limits = _ablation_limits(results, effect, fixed)
    if limits and effect.verdict in ("equivalent", "within noise"):
        lines += ["", limits]
    caveat = _caveats(caps, checks)
    if caveat:
        lines.append(caveat)
    if smoke and not effect.resolved:
        lines.append(UNRESOLVED_IN_SMOKE)
    elif smoke:
        lines += [
            "",
            "These are the smoke profile's limits; the full profile runs every rating with tuned "
            "networks and more seeds.",
        ]
    return "\n".join(lines)


def _too_few_sightings(results: Results | None, effects: Sequence[claims.Effect]) -> str:
    """Why embeddings did not beat one-hot here: each level is seen too rarely in training."""
    emb = [e for e in effects if e.ours == NAMES["emb_mlp"] and e.verdict != "better"]
    seen = _sightings(results) if results is not None and emb else ""
    if not seen:
        return ""
    n_train = int(results.frame["n_train"].max()) if results is not None else 0
    return (
        f"Why embeddings did not win the regime built for them: {n_train:,} training rows show "
        f"{seen}, too few to learn the hidden vector each level carries (the structure "
        "embeddings can recover); the regime needs larger tables to show it."
    )


def regime_summary(
    label: str,
    effects: Sequence[claims.Effect],
    caps: Sequence[claims.CapCheck],
    smoke: bool,
    *,
    results: Results | None = None,
    fixed: Mapping[str, Mapping[str, object]] | None = None,
) -> str:
    """One synthetic regime at its largest training size: each effect's sentence (by verdict),
    the cap flags first, the models this profile shrank (`fixed`), why embeddings did not win
    (how often `results`' training rows show each level), and "unresolved in smoke" for what
    the smoke run cannot decide."""
    lines = [f"**{label}**, largest training size:", ""]
    lines += [f"- {c.sentence()}" for c in caps if c.any_capped]
    lines += [f"- {e.sentence()}" for e in effects]
    shrunk = _fixed_models(fixed, {n for e in effects for n in (e.ours, e.baseline)})
    if shrunk:
        lines += [
            "",
            f"{' and '.join(shrunk)} here {'is' if len(shrunk) == 1 else 'are'} this profile's "
            "shrunk version (fixed settings above, not tuned): a lead over it says nothing about "
            "a full-size, tuned one.",
        ]
    why = _too_few_sightings(results, effects)
    if why:
        lines += ["", why]
    if smoke and not all(e.resolved for e in effects):
        lines += [
            "",
            "What this run cannot tell apart is **unresolved in smoke**: the smoke tables are too "
            "small to decide it; the full profile measures it again on larger tables.",
        ]
    return "\n".join(lines)


def audit_effects(trade: pd.DataFrame) -> dict[str, claims.Effect]:
    """Per-group thresholds against one threshold, paired over seeds, from `tradeoff` tables
    stacked by seed (index: seed, decision rule): the FPR gap, accuracy and FNR."""
    before = trade.xs("one threshold (0.5)", level="decision rule")
    after = trade.xs("per-group thresholds", level="decision rule")
    names = ("per-group thresholds", "one threshold")
    specs = {"fpr_gap": ("FPR gap", False), "accuracy": ("accuracy", True), "fnr": ("FNR", False)}
    return {
        key: claims.paired_effect(
            after[key].to_numpy(),
            before[key].to_numpy(),
            names=names,
            metric=f"test {label}",
            higher_is_better=higher,
        )
        for key, (label, higher) in specs.items()
    }


def audit_summary(effects: Mapping[str, claims.Effect], attribute: str) -> str:
    """What equalising false-positive rates bought (the FPR gap) and cost (accuracy, FNR)."""
    gap, accuracy, fnr = effects["fpr_gap"], effects["accuracy"], effects["fnr"]
    narrowed = {
        "better": "narrowed the gap in false-positive rates",
        "worse": "widened the gap in false-positive rates",
    }.get(gap.verdict, "did not measurably change the gap in false-positive rates")
    cost = {
        "worse": "cost accuracy",
        "better": "raised accuracy",
    }.get(accuracy.verdict, "changed accuracy by less than this run can resolve")
    missed = {
        "worse": "more of the people above the line are missed",
        "better": "fewer of the people above the line are missed",
    }.get(fnr.verdict, "the change in missed positives is within noise")
    return (
        f"**Per-group thresholds {narrowed} between the {attribute} groups** on held-out test "
        f"rows: from {gap.baseline_mean:.3f} to {gap.ours_mean:.3f}, {gap.interval()}. They "
        f"{cost}: {accuracy.sentence()} Overall FNR: {fnr.interval()}; {missed}. The base rates "
        "differ between the groups, so equal FPR, equal FNR and equal selection rates cannot all "
        "hold at once: whichever criterion you pick, say so and report the rest."
    )


def small_groups_note(audits: Mapping[str, Audit], min_group: int) -> str:
    """For each audited attribute: its groups too small to trust, or that every group is large
    enough (at least `min_group` true negatives and positives in the test rows)."""
    lines = []
    for attribute, audit in audits.items():
        flagged = small_groups(audit.before, min_group)
        if flagged:
            listed = "; ".join(f"{g} ({c})" for g, c in flagged.items())
            lines.append(
                f"- **{attribute}: too few test rows to trust the rates of {listed}.** A group "
                f"needs at least {min_group} true negatives and positives; its per-group "
                "threshold is fitted on even fewer validation rows."
            )
        else:
            lines.append(
                f"- {attribute}: every group has at least {min_group} true negatives and "
                "positives in the test rows."
            )
    return "\n".join(lines)


def own_csv_summary(
    check: claims.BaselineCheck, reload_gap: float, cap: claims.CapCheck | None = None
) -> str:
    """Section 6's verdict: whether the runs stopped at their epoch cap (`cap`, said first), did
    the MLP trained from the CSV learn (against the majority share of its test rows), and does
    the copy loaded from disk give the same probabilities."""
    same = (
        "gives the trained one's probabilities"
        if reload_gap <= 1e-6
        else "does NOT give the trained one's probabilities"
    )
    first = f"{cap.sentence()} " if cap is not None else ""
    return (
        f"{first}{check.sentence()} The model loaded from disk {same} on rows it never saw "
        f"(largest difference {reload_gap:.1e})."
    )
