"""Notebook 02's closing verdicts (`scoreboard`) and the values it records.

`scoreboard` reads every comparison of the notebook, real tables and synthetic ones apart: the
synthetic tables were built to favour one side each, so they show when a side can win, not how
often it does, and their verdicts are not counted with the real tables'. `real_records` and
`margin_over_baseline` compute the values the notebook records for its gates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlnb import claims
from dlnb.tabular.results import Results
from dlnb.tabular.tables import reference_accuracy

__all__ = ["margin_over_baseline", "real_records", "scoreboard", "timing_note"]

ORDER = ("better", "equivalent", "within noise", "worse", "unresolved")


def timing_note(device: str, threads: int | None) -> str:
    """Where the costs were timed, and what a different device changes: 'wall-clock on this
    run's CPU, one thread per model; a GPU changes the deep models' costs'."""
    if device.startswith("cuda"):
        return (
            "wall-clock on this run's GPU; on a CPU the deep models' costs grow more than XGBoost's"
        )
    per_model = "one thread per model" if threads == 1 else "every thread of the CPU"
    return (
        f"wall-clock on this run's CPU, {per_model}; a GPU changes the deep models' costs, so "
        "the ratios hold for this machine only"
    )


def _verdict(results: Results) -> str | None:
    """XGBoost against the best deep model of one comparison ('' when it did not run both)."""
    if "xgboost" not in set(results.frame["model"]) or not results.models_run():
        return None
    return results.effect("xgboost", results.best(tuple(results.models_run()))).verdict


def _cheapest(results: Results) -> bool:
    """Whether XGBoost had the smallest mean tuning time of the comparison's models."""
    top = results.largest()
    top = top[top["model"] != "majority"].set_index("model")
    return bool(top["tune_seconds_mean"].idxmin() == "xgboost")


def scoreboard(
    real: Mapping[str, Results], synthetic: Mapping[str, Results], timing: str = ""
) -> str:
    """One paragraph per table (`Results.describe`), then XGBoost against the best deep model
    by verdict: tallied over the `real` tables, listed apart for the `synthetic` ones (built to
    favour one side each, so not evidence of how often a side wins), and the cheapest model to
    tune, timed as `timing` says (its first clause beside each table's ratio); in Markdown."""
    where = timing.split(";")[0]  # "wall-clock on this run's CPU, one thread per model"
    lines = [f"- **{name}** (real table): {r.describe(where)}" for name, r in real.items()]
    lines += [
        f"- **{name}** (synthetic, built for this regime): {r.describe(where)}"
        for name, r in synthetic.items()
    ]
    counts: dict[str, int] = {}
    for r in real.values():
        verdict = _verdict(r)
        if verdict is not None:
            counts[verdict] = counts.get(verdict, 0) + 1
    tally = ", ".join(f"{v} on {counts[v]}" for v in ORDER if v in counts)
    built = "; ".join(f"{name}: {_verdict(r) or 'not run'}" for name, r in synthetic.items())
    tables = {**real, **synthetic}
    cheapest = sum(_cheapest(r) for r in tables.values())
    lines += [
        "",
        f"On the real tables, XGBoost against the best deep model, by the verdict of its 95 % "
        f"interval over seeds: {tally or 'no table ran both'} (of {len(real)} tables). The "
        "synthetic tables were built to favour one side each, so they show when a side can win, "
        f"not how often it does, and are not counted with them ({built}). XGBoost was the "
        f"cheapest to tune on {cheapest} of {len(tables)} tables"
        + (f" ({timing})." if timing else "."),
    ]
    return "\n".join(lines)


def margin_over_baseline(results: Results) -> float:
    """The weakest model's mean headline metric minus the baseline's (majority class or mean
    predictor) at the largest size, signed so that positive means better than the baseline."""
    s = results.largest().set_index("model")[f"{results.metric}_mean"]
    sign = 1 if results.higher_is_better else -1
    return float((sign * (s.drop(index="majority") - s["majority"])).min())


def _baseline_key(results: Results) -> str:
    """'mean_predictor' for a regression table, 'majority_class' for a classification one."""
    return results.name("majority").replace(" ", "_")


def real_records(
    results: Results,
    checks: Sequence[claims.BaselineCheck],
    caps: Sequence[claims.CapCheck],
) -> dict[str, float | int | str | bool]:
    """Section 2's values for the gates: the table, each model's mean headline metric (the
    baseline named for what it is: `real_mean_predictor_rmse` on diamonds), the largest std
    over seeds, the share of the baseline's error the weakest model removes
    (`real_min_skill_over_baseline`), whether every model learned, the capped deep runs, the
    best deep model and, for Adult, the shortfall against its published XGBoost accuracy."""
    table, metric = results.source, results.metric
    s = results.largest().set_index("model")
    error = s[f"{metric}_mean"] if metric == "rmse" else 1 - s["accuracy_mean"]
    name = str(results.frame["dataset"].iloc[0])
    values: dict[str, float | int | str | bool] = {
        "real_dataset": name,
        "real_has_categoricals": bool(table is not None and len(table.categorical) > 0),
        "real_seeds": int(results.frame["seed"].nunique()),
    }
    for model in s.index:
        key = _baseline_key(results) if model == "majority" else model
        values[f"real_{key}_{metric}"] = float(s.loc[model, f"{metric}_mean"])
    values["real_max_seed_std"] = float(s.drop(index="majority")[f"{metric}_std"].max())
    skill = 1 - error.drop(index="majority").max() / error["majority"]
    values["real_min_skill_over_baseline"] = float(skill)
    values["real_all_learned"] = all(c.learned for c in checks)
    values["real_deep_capped_runs"] = sum(c.capped for c in caps)
    values["real_best_deep_model"] = results.best()
    reference = reference_accuracy(name)
    if reference is not None and "accuracy_mean" in s:  # only Adult has a published figure
        values["xgboost_reference_shortfall"] = max(
            0.0, reference - float(s.loc["xgboost", "accuracy_mean"])
        )
    return values
