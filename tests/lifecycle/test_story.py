"""Notebook 09's sentences (dlnb.lifecycle.story): tuning, learning, drift against harm and
retraining against its control, each worded by its verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb import claims
from dlnb.deploy.monitor import DriftThresholds
from dlnb.lifecycle import story

PERIODS = ["1950-79 (same era)", "1980s", "1990s", "2000-05"]


def _effect(ours, baseline, names=("a", "b")) -> claims.Effect:
    return claims.paired_effect(ours, baseline, names=names, metric="ROC AUC")


def test_periods_summary_reads_the_first_and_last_period():
    periods = pd.DataFrame(
        {
            "period": ["1950-79", "1980s", "2000-05"],
            "median votes": [27.0, 44.0, 30.0],
            "short films": [0.104, 0.05, 0.235],
            "rated >= 7": [0.236, 0.2, 0.353],
        }
    )
    text = story.periods_summary(periods)
    assert "from 27 to 30 (highest in the 1980s: 44)" in text
    assert "from 10.4% to 23.5%" in text and "from 23.6% to 35.3%" in text


def _history(values, states=None) -> pd.DataFrame:
    states = states or ["COMPLETE"] * len(values)
    return pd.DataFrame({"number": range(len(values)), "state": states, "value": values})


def test_the_study_summary_says_what_the_best_trial_changed_on_one_split():
    history = _history([0.4372, 0.4400, 0.4362, np.nan], [*["COMPLETE"] * 3, "PRUNED"])
    text = story.study_summary(history, {"width": 128, "lr": 0.00123})
    assert "4 trials: 3 complete and 1 pruned" in text
    assert "reached validation log loss 0.4372" in text
    assert "the best, trial 2, 0.4362 (-0.0010) with `width=128`, `lr=0.00123`" in text
    assert "one validation split of one seed" in text
    assert "no trial beat them" in story.study_summary(_history([0.40, 0.41]), {"width": 1})


RANKING = claims.learned("The tuned MLP", [0.69, 0.70, 0.71], 0.5, margin=0.05)
BARELY = claims.learned("The tuned MLP", [0.794, 0.790, 0.798], 0.784, margin=0.02)


@pytest.mark.parametrize(
    ("tuned", "words"),
    [
        ([0.72, 0.73, 0.74], "**Tuning helped**"),
        ([0.690, 0.712, 0.695], "**Tuning did not measurably help**"),
        ([0.65, 0.66, 0.67], "**Tuning did not help: the defaults did better**"),
    ],
)
def test_tuning_is_worded_by_its_verdict(tuned, words):
    effect = _effect(tuned, [0.70, 0.70, 0.70], ("the tuned MLP", "the defaults"))
    text = story.tuning_summary(effect, RANKING, BARELY, 4000, smoke=True)
    assert words in text and "4,000 unseen films" in text
    assert ("unresolved in smoke" in text) == (not effect.resolved)


def test_a_model_barely_above_the_majority_class_is_called_that():
    effect = _effect([0.72, 0.73, 0.74], [0.70, 0.70, 0.70])
    text = story.tuning_summary(effect, RANKING, BARELY, 4000, smoke=False)
    assert "In ranking films, yes: The tuned MLP learned" in text
    assert "**barely above** the majority class: 0.794 against 0.784 (+0.010" in text
    assert "the worse end of that interval is +0.000 above it, short of the 0.02" in text
    assert "78% of films rated below 7" in text
    clear = claims.learned("The tuned MLP", [0.85, 0.86, 0.84], 0.784, margin=0.02)
    assert "clearly above" in story.tuning_summary(effect, RANKING, clear, 10, smoke=False)
    below = claims.learned("The tuned MLP", [0.78, 0.77, 0.775], 0.784, margin=0.02)
    assert "does **not** beat" in story.tuning_summary(effect, RANKING, below, 10, smoke=False)


def test_tamper_summary_follows_the_verification():
    assert "is caught by the content hash" in story.tamper_summary(False, False)
    assert "is caught too" in story.tamper_summary(False, False)
    assert "is NOT caught" in story.tamper_summary(True, True)


def _stream(ks_1980s: float) -> pd.DataFrame:
    rows = []
    for window in range(4):
        for feature in ("length", "votes"):
            ks = ks_1980s if (window >= 1 and feature == "length") else 0.02
            alert = ks >= 0.1
            rows.append(
                {
                    "feature": feature,
                    "window": window,
                    "psi": 0.05 + 0.01 * window,
                    "ks_statistic": ks,
                    "ks_pvalue": 1e-9 if alert else 0.5,
                    "alert": alert,
                    "reason": f"KS {ks:.2f} (p=1.0e-09)" if alert else "",
                }
            )
    return pd.DataFrame(rows)


def test_drift_in_the_inputs_is_kept_apart_from_harm_to_the_model():
    harm = {
        "1980s": _effect([0.699, 0.70, 0.69], [0.704, 0.69, 0.70]),
        "2000-05": _effect([0.63, 0.64, 0.62], [0.70, 0.71, 0.71]),
    }
    text = story.drift_summary(_stream(0.11), PERIODS, DriftThresholds(), harm, 0)
    assert "On seed 0's stream, unseen films of the training era raise no alert" in text
    assert "**The first alert, in the 1980s, is drift in the inputs**" in text
    assert "length (KS distance 0.110 against the 0.1 floor, just above it" in text
    assert "it does not say the model got worse" in text
    assert "- 1980s: **no measurable harm**. A and b are within noise" in text
    assert "- 2000-05: **measurable harm**." in text
    clear = story.drift_summary(_stream(0.3), PERIODS, DriftThresholds(), harm, 0)
    assert "just above it" not in clear


def test_a_stream_without_alerts_says_so():
    quiet = _stream(0.02)
    text = story.drift_summary(quiet, PERIODS, DriftThresholds(), {}, 0)
    assert "No later window raised an alert either." in text


def _retrain(gains_drift, gains_control):
    seeds = range(len(gains_drift))
    first = pd.DataFrame(
        {"period": "1980s", "seconds": [2.0, 3.0, 4.0][: len(gains_drift)]},
        index=pd.Index(seeds, name="seed"),
    )
    decisions = pd.DataFrame(
        {"seed": [s for s in seeds for _ in range(4)], "action": ["no_alert", "promoted"] * 6}
    )
    base = [0.70] * len(gains_drift)
    effects = {
        "drift": _effect(np.add(base, gains_drift), base),
        "control": _effect(np.add(base, gains_control), base),
        "versus": _effect(gains_drift, gains_control),
    }
    return first, decisions, effects


def test_retraining_is_judged_against_its_control():
    first, decisions, effects = _retrain([0.057, 0.083, 0.063], [-0.01, 0.0, -0.005])
    text = story.retrain_summary(first, decisions, effects, 0.01, smoke=True)
    assert "On 3 of 3 seeds an alert led to a retraining, first in the 1980s" in text
    assert "The control, the same retraining on unseen films of the training era" in text
    assert "**Retraining after drift gains more than retraining without drift.**" in text
    assert "unresolved in smoke" not in text
    assert "promoted 6 candidates and kept out 0" in text
    assert "took 3.0 s (median" in text and "48 hours from an alert" in text


def test_a_gain_no_larger_than_the_controls_is_not_credited_to_drift():
    first, decisions, effects = _retrain([0.05, 0.06, 0.04], [0.06, 0.03, 0.05])
    text = story.retrain_summary(first, decisions, effects, 0.01, smoke=True)
    assert "cannot tell the gain after drift from the gain of retraining without drift" in text
    assert "unresolved in smoke" in text
    worse = story.retrain_summary(*_retrain([0.0, 0.01, 0.0], [0.05, 0.06, 0.05]), 0.01, False)
    assert "gains less than retraining without drift" in worse


def test_the_drift_figure_rings_the_alerts_and_keeps_the_legend_off_the_data():
    import matplotlib

    matplotlib.use("Agg")
    fig = story.plot_drift_panels(_stream(0.11), DriftThresholds(), PERIODS)
    psi, ks = fig.axes
    assert all(ax.get_legend() is None for ax in (psi, ks))
    ringed = ks.collections[-1].get_offsets()
    assert sorted(map(tuple, np.asarray(ringed))) == [(1, 0.11), (2, 0.11), (3, 0.11)]
    assert len(psi.collections[-1].get_offsets()) == 0  # no window alerted on PSI
    assert [t.get_text() for t in ks.get_xticklabels()] == PERIODS
    (legend,) = fig.legends
    names = [t.get_text() for t in legend.get_texts()]
    assert "raised the alert" in names and "alert threshold of the panel" in names
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ks.get_window_extent().x1


def test_a_gain_where_no_harm_was_measured_is_called_an_opportunity():
    first, decisions, effects = _retrain([0.057, 0.083, 0.063], [-0.01, 0.0, -0.005])
    first["drifted"] = [["length"], ["length"], ["length", "votes"]]
    no_harm = {"1980s": _effect([0.699, 0.70, 0.69], [0.704, 0.69, 0.70])}
    text = story.retrain_summary(first, decisions, effects, 0.01, smoke=True, harm=no_harm)
    assert "No measurable harm on 1980s films (section 5) and a gain of +0.068" in text
    assert "an opportunity, not a repair" in text
    assert "Nothing here shows that the flagged shift in length and votes caused it" in text
    # the sentence sits with the gain, before the control
    assert text.index("opportunity") < text.index("The control, the same retraining")
    harmed = {"1980s": _effect([0.66, 0.67, 0.65], [0.704, 0.71, 0.70])}
    worse = story.retrain_summary(first, decisions, effects, 0.01, smoke=True, harm=harmed)
    assert "measurably worse than on its own era" in worse and "opportunity" not in worse
    assert "opportunity" not in story.retrain_summary(first, decisions, effects, 0.01, True)


def _steps(actions, reasons=None) -> pd.DataFrame:
    reasons = reasons or ["no feature drifted (largest PSI 0.077)"] * len(actions)
    return pd.DataFrame({"step": range(1, len(actions) + 1), "action": actions, "reason": reasons})


def test_a_window_the_monitor_flagged_but_the_step_did_not_is_explained_by_the_new_reference():
    steps = _steps(["no_alert", "promoted", "no_alert", "promoted"])
    text = story.reference_note([False, True, True, True], steps, PERIODS)
    assert (
        "Section 5's monitor flagged the 1990s against the first training films, but step 3 "
        "here found no feature drifted (largest PSI 0.077): the promotion at step 2 made the "
        "films its candidate was trained on (1980s) the new reference." == text
    )
    same = story.reference_note([False, True, False, True], steps, PERIODS)
    assert same.startswith("The steps alerted on the same windows as section 5's monitor")
    kept = story.reference_note(
        [False, True, True, True], _steps(["no_alert", "kept"] * 2), PERIODS
    )
    assert kept.startswith("No candidate was promoted")
    extra = story.reference_note(
        [False, True, False, False],
        _steps(["no_alert", "promoted", "promoted", "no_alert"]),
        PERIODS,
    )
    assert "compared the 1990s against the first training films, but step 3 here alerted" in extra


def test_the_alerts_table_keeps_every_reason_whole():
    stream = _stream(0.11)
    stream.loc[(stream["window"] == 3) & (stream["feature"] == "votes"), ["alert", "reason"]] = [
        True,
        "KS 0.14 (p=1.0e-09)",
    ]
    table = story.alerts_table(stream, PERIODS)
    assert list(table.index) == PERIODS and not table.loc[PERIODS[0], "alert"]
    assert (
        table.loc["2000-05", "reasons"]
        == "length: KS 0.11 (p=1.0e-09) | votes: KS 0.14 (p=1.0e-09)"
    )
