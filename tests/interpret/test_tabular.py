"""dlnb.interpret.tabular: Shapley and ablation attributions of tables, and XGBoost's importances."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.interpret.tabular import attribute_tabular, importance_table, xgboost_importance


def test_tabular_attributions_recover_a_linear_model():
    rng = np.random.default_rng(0)
    w = np.array([3.0, -2.0, 0.0, 0.5], dtype=np.float32)
    background = rng.normal(size=(200, 4)).astype(np.float32)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    exact = w * (x - background.mean(axis=0))  # Shapley values of a linear model
    for method in ("shapley", "ablation"):
        got = attribute_tabular(lambda a: a @ w, x, background, method, n_samples=5)
        np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="same F"):
        attribute_tabular(lambda a: a @ w, x[:, :3], background)
    with pytest.raises(ValueError, match="Unknown tabular method"):
        attribute_tabular(lambda a: a @ w, x, background, "lime")


def test_xgboost_importances_find_the_informative_features():
    import xgboost

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (2 * x[:, 1] - x[:, 3] > 0).astype(int)  # only features 1 and 3 matter
    clf = xgboost.XGBClassifier(n_estimators=30, max_depth=2, random_state=0).fit(x, y)
    margin = lambda a: clf.predict(a, output_margin=True)  # noqa: E731
    shapley = attribute_tabular(margin, x[:40], x, n_samples=10)
    sources = {
        "shapley": shapley,
        "gain": xgboost_importance(clf, "gain"),
        "treeshap": xgboost_importance(clf, "shap", x[:40]),
    }
    table = importance_table(sources, [f"x{i}" for i in range(5)])
    np.testing.assert_allclose(table.sum(), 1.0)
    for column in table:
        assert set(table[column].nlargest(2).index) == {"x1", "x3"}, column
    assert table.index[0] == "x1"  # sorted by the first source; x1 has twice the weight
    with pytest.raises(ValueError, match="needs the rows"):
        xgboost_importance(clf, "shap")
    with pytest.raises(ValueError, match=r"shaped \(N, 5\)"):
        xgboost_importance(clf, "shap", x[:, :3])
    with pytest.raises(ValueError, match="has 3 values for 5 features"):
        importance_table({"bad": np.ones(3)}, [f"x{i}" for i in range(5)])


def test_xgboost_contributions_add_up_to_the_margin():
    import xgboost

    from dlnb.interpret.tabular import xgboost_contributions

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    clf = xgboost.XGBClassifier(n_estimators=10, max_depth=2).fit(x, (x[:, 0] > 0).astype(int))
    contributions = xgboost_contributions(clf, x[:7])
    assert contributions.shape == (7, 4)
    bias = clf.get_booster().predict(xgboost.DMatrix(x[:7]), pred_contribs=True)[:, -1]
    np.testing.assert_allclose(
        contributions.sum(1) + bias, clf.predict(x[:7], output_margin=True), rtol=1e-5, atol=1e-5
    )


def test_ranking_agreement_reports_both_correlations_and_their_difference():
    from dlnb.interpret.tabular import ranking_agreement

    rng = np.random.default_rng(0)
    weights = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    rows = rng.normal(size=(60, 6)) * weights
    same = rows + rng.normal(scale=0.05, size=rows.shape)  # the exact method: the same ranking
    reversed_gain = weights[::-1].copy()  # a global importance that ranks them the other way
    names = [f"x{i}" for i in range(6)]
    agreement = ranking_agreement(rows, same, reversed_gain, names, resamples=200)
    assert agreement.exact[0] == pytest.approx(1.0) and agreement.fixed[0] == pytest.approx(-1.0)
    low, high = agreement.exact[1:]
    assert low <= 1.0 <= high + 1e-9 and agreement.rows == 60
    assert agreement.effect.verdict == "better" and agreement.effect.low > 0
    text = agreement.markdown(top=2)
    assert "It agrees more with TreeSHAP than with gain" in text
    assert "x0 (#1 under TreeSHAP, #6 under gain); x1 (#2 under TreeSHAP, #5 under gain)" in text
    noise = ranking_agreement(
        rows, rng.normal(size=rows.shape), rng.random(6), names, resamples=200
    )
    assert noise.effect.verdict == "within noise"
    assert "within noise of each other" in noise.markdown()
    flipped = ranking_agreement(rows, -same[:, ::-1], weights, names, resamples=200)
    assert (
        flipped.effect.verdict == "worse"
        and "more with gain than with TreeSHAP" in flipped.markdown()
    )
    with pytest.raises(ValueError, match="Shapes do not match"):
        ranking_agreement(rows, same[:, :5], weights, names)
