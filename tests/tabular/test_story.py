"""Notebook 02's sentences (dlnb.tabular.story): each claim worded by its verdict, caps and
baselines that did not learn said before the claim, "unresolved in smoke" where smoke cannot tell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb import claims
from dlnb.tabular import story
from dlnb.tabular.fairness import Audit
from dlnb.tabular.results import Results
from dlnb.tabular.tables import table_from_frame


def _results(scores: dict[str, list[float]], task: str = "regression", epochs: int = 40):
    """A comparison with one row per model and seed; the headline metric from `scores`."""
    metric = "rmse" if task == "regression" else "accuracy"
    rows = [
        {
            "dataset": "diamonds" if task == "regression" else "insteval",
            "task": task,
            "model": model,
            "seed": seed,
            "n_train": 2000,
            metric: value,
            "train_seconds": 1.0,
            "tune_seconds": 1.0 if model == "xgboost" else 5.0,
            "infer_ms_per_1k": 1.0,
            "params": np.nan if model == "xgboost" else 5000 + 100 * len(model),
            "trees": 10 if model == "xgboost" else np.nan,
            "leaves": 80 if model == "xgboost" else np.nan,
            "epochs": 0 if model == "majority" else epochs,
        }
        for model, values in scores.items()
        for seed, value in enumerate(values)
    ]
    return Results(pd.DataFrame(rows))


BASE = [0.44, 0.43, 0.45]


def _real(xgb: list[float], emb: list[float], epochs: int = 40):
    r = _results(
        {"majority": BASE, "xgboost": xgb, "emb_mlp": emb, "mlp": [0.07] * 3}, epochs=epochs
    )
    effect = r.effect("xgboost", r.best(), error=True)
    checks = [r.learned(m, 0.02) for m in ("xgboost", "emb_mlp", "mlp")]
    return r, effect, r.caps(100), checks


def test_xgboost_ahead_on_every_seed_by_more_than_the_noise_is_better():
    r, effect, caps, checks = _real([0.050, 0.049, 0.051], [0.055, 0.055, 0.056])
    text = story.real_table_summary(r, effect, caps, checks, smoke=True)
    assert effect.verdict == "better"
    assert "**On diamonds, XGBoost beats the best deep model (MLP + embeddings).**" in text
    assert "95 % CI" in text and "unresolved in smoke" not in text
    assert "mean predictor" in text  # the regression baseline is named for what it is
    # the convergence checks come before the claim
    assert text.index("every run stopped before its 100-epoch cap") < text.index("**On diamonds")


def test_a_gap_inside_the_noise_is_unresolved_in_smoke_not_a_win():
    r, effect, caps, checks = _real([0.050, 0.058, 0.049], [0.055, 0.052, 0.056])
    assert effect.diff < 0  # XGBoost's mean error is lower, yet:
    smoke = story.real_table_summary(r, effect, caps, checks, smoke=True)
    assert effect.verdict == "within noise"
    assert "cannot tell XGBoost and the best deep model (MLP + embeddings) apart" in smoke
    assert "unresolved in smoke" in smoke and "beats" not in smoke
    full = story.real_table_summary(r, effect, caps, checks, smoke=False)
    assert "unresolved in smoke" not in full


def test_a_deep_model_ahead_reverses_the_claim():
    r, effect, caps, checks = _real([0.060, 0.061, 0.062], [0.050, 0.050, 0.052])
    text = story.real_table_summary(r, effect, caps, checks, smoke=True)
    assert effect.verdict == "worse"
    assert "the best deep model (MLP + embeddings) beats XGBoost" in text


def test_capped_runs_are_flagged_before_the_claim():
    r, effect, caps, checks = _real([0.050, 0.049, 0.051], [0.055, 0.055, 0.056], epochs=100)
    text = story.real_table_summary(r, effect, caps, checks, smoke=True)
    flag = text.index("3 of 3 runs stopped at their 100-epoch cap")
    assert flag < text.index("**On diamonds")
    assert "may flatter XGBoost" in text


def test_a_deep_model_that_did_not_learn_is_called_out():
    r = _results({"majority": BASE, "xgboost": [0.05] * 3, "mlp": [0.43, 0.44, 0.45]})
    effect = r.effect("xgboost", "mlp", error=True)
    checks = [r.learned(m, 0.02) for m in ("xgboost", "mlp")]
    text = story.real_table_summary(r, effect, r.caps(100), checks, smoke=True)
    assert "MLP (one-hot) did NOT learn enough" in text
    assert "MLP (one-hot) did not learn enough: comparisons with it prove nothing" in text


ACC = {"majority": [0.554] * 3, "xgboost": [0.612, 0.610, 0.611]}


@pytest.mark.parametrize(
    ("emb", "onehot", "words"),
    [
        ([0.612, 0.611, 0.613], [0.611, 0.611, 0.612], "no difference larger than 0.02 accuracy"),
        ([0.640, 0.645, 0.642], [0.611, 0.612, 0.610], "MLP with embeddings beats the one-hot"),
        ([0.600, 0.601, 0.599], [0.631, 0.632, 0.630], "the one-hot MLP beats the MLP with"),
        ([0.640, 0.600, 0.660], [0.611, 0.640, 0.610], "cannot tell embeddings from one-hot"),
    ],
)
def test_the_ablation_is_worded_by_its_verdict(emb, onehot, words):
    r = _results({**ACC, "emb_mlp": emb, "mlp": onehot}, task="binary")
    effect = r.effect("emb_mlp", "mlp", band=0.02)
    checks = [r.learned(m, 0.02) for m in ("mlp", "emb_mlp")]
    text = story.ablation_summary(r, effect, checks, r.caps(100), smoke=True)
    assert words in text
    assert ("unresolved in smoke" in text) == (not effect.resolved)
    assert "5,700 parameters" in text  # the embedding MLP's size, from the results


def _ids(n_rows: int, levels: int) -> pd.DataFrame:
    """A table with a student ID of `levels` levels, a two-level column and a target."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "s": [f"s{i % levels}" for i in range(n_rows)],
            "service": rng.choice(["0", "1"], n_rows),
            "x": rng.normal(size=n_rows),
            "y": rng.integers(0, 2, n_rows),
        }
    )


def test_a_no_difference_says_its_band_against_the_margin_and_what_the_size_cannot_show():
    emb, onehot = [0.618, 0.615, 0.613], [0.612, 0.612, 0.610]  # embeddings ahead on every seed
    r = _results({**ACC, "emb_mlp": emb, "mlp": onehot}, task="binary")
    r.source = table_from_frame(_ids(3000, 1000), "y", name="InstEval", task="binary")
    effect = r.effect("emb_mlp", "mlp", band=0.02)
    checks = [r.learned(m, 0.02) for m in ("mlp", "emb_mlp")]
    fixed = {"mlp": {"width": 64}, "emb_mlp": {"width": 64}}
    text = story.ablation_summary(r, effect, checks, r.caps(100), smoke=True, fixed=fixed)
    assert effect.verdict == "equivalent" and "equivalent" not in text
    # margin: the weakest model (one-hot, 0.6113) over the 0.554 majority
    assert "The band of +-0.02 is 35% of the 0.057 by which the weakest model beats" in text
    assert "2,000 training rows show each `s` level about 2.0 times" in text  # not `service`
    assert "MLP (one-hot) and MLP + embeddings are fixed at this profile's small sizes" in text
    assert "Every seed put MLP + embeddings ahead (by 0.003 to 0.006)" in text
    assert "the full profile runs every rating" in text and "unresolved in smoke" not in text
    full = story.ablation_summary(r, effect, checks, r.caps(100), smoke=False)
    assert "smoke profile's limits" not in full and "fixed at this profile" not in full


def test_an_ablation_against_a_model_at_the_majority_rate_proves_nothing():
    r = _results({**ACC, "emb_mlp": [0.56, 0.55, 0.555], "mlp": [0.612] * 3}, task="binary")
    checks = [r.learned(m, 0.02) for m in ("mlp", "emb_mlp")]
    text = story.ablation_summary(r, r.effect("emb_mlp", "mlp"), checks, r.caps(100), smoke=False)
    assert "MLP + embeddings did NOT learn enough" in text and "prove nothing" in text


def test_a_regime_says_what_it_cannot_resolve_in_smoke():
    win = claims.paired_effect([0.80, 0.81, 0.82], [0.70, 0.71, 0.70], names=("XGBoost", "MLP"))
    noise = claims.paired_effect([0.6, 0.7, 0.65], [0.66, 0.62, 0.7], names=("a", "b"), band=0.02)
    cap = claims.capped("FT-Transformer", [50, 12, 12], 50)
    assert "unresolved in smoke" not in story.regime_summary("trees", [win], [], smoke=True)
    text = story.regime_summary("embeddings", [win, noise], [cap], smoke=True)
    assert "XGBoost is better than MLP" in text and "cannot tell them apart" in text
    assert "unresolved in smoke" in text and "1 of 3 runs stopped at their 50-epoch cap" in text
    assert "unresolved in smoke" not in story.regime_summary("e", [noise], [], smoke=False)


def test_a_regime_says_which_model_was_shrunk_and_why_embeddings_did_not_win():
    emb = claims.paired_effect(
        [0.64, 0.60, 0.69], [0.67, 0.68, 0.68], names=("MLP + embeddings", "MLP (one-hot)")
    )
    r = _results({"majority": [0.5] * 3, "emb_mlp": [0.64, 0.60, 0.69]}, task="binary")
    r.frame["n_train"] = 1000
    r.source = table_from_frame(_ids(1500, 100), "y", name="synthetic", task="binary")
    fixed = {"ft_transformer": {"n_blocks": 1}}
    text = story.regime_summary("embeddings", [emb], [], smoke=True, results=r, fixed=fixed)
    assert "Why embeddings did not win the regime built for them: 1,000 training rows show " in text
    assert "each `s` level about 10.0 times" in text and "shrunk" not in text
    ft = claims.paired_effect(
        [0.80, 0.81, 0.82], [0.70, 0.71, 0.70], names=("XGBoost", "FT-Transformer")
    )
    trees = story.regime_summary("trees", [ft], [], smoke=True, results=r, fixed=fixed)
    assert "FT-Transformer here is this profile's shrunk version" in trees
    assert "Why embeddings" not in trees  # no embedding effect was claimed here
    won = claims.paired_effect(
        [0.80, 0.81, 0.82], [0.70, 0.71, 0.70], names=("MLP + embeddings", "MLP (one-hot)")
    )
    assert "Why embeddings" not in story.regime_summary("e", [won], [], smoke=True, results=r)


def _trade(gaps_before, gaps_after, acc_before, acc_after) -> pd.DataFrame:
    frames = {}
    for seed, (gb, ga, ab, aa) in enumerate(
        zip(gaps_before, gaps_after, acc_before, acc_after, strict=True)
    ):
        frames[seed] = pd.DataFrame(
            {
                "fpr_gap": [gb, ga],
                "fnr_gap": [0.3, 0.05],
                "accuracy": [ab, aa],
                "fpr": [0.25, 0.23],
                "fnr": [0.28 + 0.01 * seed, 0.35 + 0.02 * seed],
            },
            index=["one threshold (0.5)", "per-group thresholds"],
        )
    return pd.concat(frames, names=["seed", "decision rule"])


def test_the_audit_states_what_per_group_thresholds_bought_and_cost():
    trade = _trade([0.32, 0.33, 0.34], [0.05, 0.06, 0.10], [0.73, 0.71, 0.75], [0.70, 0.682, 0.718])
    effects = story.audit_effects(trade)
    assert effects["fpr_gap"].verdict == "better" and effects["accuracy"].verdict == "worse"
    text = story.audit_summary(effects, "sex")
    assert "narrowed the gap in false-positive rates between the sex groups" in text
    assert "from 0.330 to 0.070" in text and "cost accuracy" in text
    assert "more of the people above the line are missed" in text


def test_an_audit_whose_changes_are_inside_the_noise_says_so():
    trade = _trade([0.30, 0.10, 0.20], [0.10, 0.30, 0.19], [0.73, 0.71, 0.75], [0.74, 0.70, 0.75])
    text = story.audit_summary(story.audit_effects(trade), "sex")
    assert "did not measurably change the gap" in text
    assert "changed accuracy by less than this run can resolve" in text


def test_small_groups_are_named_and_large_ones_pass():
    def audit(counts: dict[str, tuple[int, float]]) -> Audit:
        rows = {g: {"n": n, "base_rate": rate} for g, (n, rate) in counts.items()}
        frame = pd.DataFrame(rows).T
        return Audit("xgboost", "a", frame, frame, {})

    text = story.small_groups_note(
        {"sex": audit({"F": (400, 0.4), "M": (400, 0.5)}), "language": audit({"Fr": (40, 0.5)})},
        50,
    )
    assert "sex: every group has at least 50" in text
    assert (
        "language: too few test rows to trust the rates of Fr (20 negatives, 20 positives)" in text
    )


def test_notes_say_what_a_profile_fixes_or_leaves_out():
    note = story.fixed_settings_note({"ft_transformer": {"n_blocks": 1, "lr": 1e-3}}, "A CPU.")
    assert "FT-Transformer fixed at `n_blocks=1` (default 2), `lr=0.001` (default 0.0003)" in note
    assert note.endswith("A CPU.") and story.fixed_settings_note({}, "why") == ""
    assert "FT-Transformer is left out of this comparison" in story.left_out_note(
        ("ft_transformer",), "too slow."
    )
    assert story.left_out_note((), "why") == ""


def test_the_own_csv_verdict_follows_the_check_and_the_reload():
    learned = claims.learned("the MLP", [0.73, 0.74, 0.735], 0.56, margin=0.1)
    text = story.own_csv_summary(learned, 0.0)
    assert "the MLP learned" in text and "gives the trained one's probabilities" in text
    not_learned = claims.learned("the MLP", [0.57, 0.56, 0.58], 0.56, margin=0.1)
    text = story.own_csv_summary(not_learned, 0.2)
    assert "did NOT learn" in text and "does NOT give" in text
    capped = story.own_csv_summary(learned, 0.0, claims.capped("the MLP", [10, 10, 7], 10))
    assert capped.index("2 of 3 runs stopped at their 10-epoch cap") < capped.index("learned")
    converged = story.own_csv_summary(learned, 0.0, claims.capped("the MLP", [31, 25, 40], 200))
    assert converged.startswith("the MLP: every run stopped before its 200-epoch cap")
