"""Tabular: tables (yours with `from_csv`), preprocessing, models, the fair comparison, results and fairness."""

from __future__ import annotations

from dlnb.tabular.catalog import parse_adult, parse_california, parse_covtype
from dlnb.tabular.comparison import MODELS, compare
from dlnb.tabular.convergence import EpochCount
from dlnb.tabular.fairness import (
    apply_thresholds,
    disparities,
    equal_fpr_thresholds,
    group_metrics,
    plot_group_metrics,
    small_groups,
    tradeoff,
)
from dlnb.tabular.models import (
    CategoricalEmbedding,
    FTTransformer,
    TabularMLP,
    build_model,
    suggest_params,
)
from dlnb.tabular.predictor import TabularModel, fit_table, load_tabular
from dlnb.tabular.preprocess import Preprocessor, Split, fit_preprocessor, make_split
from dlnb.tabular.reading import from_csv
from dlnb.tabular.results import (
    COLORS,
    NAMES,
    Audit,
    Results,
    plot_learning_curves,
    scores,
)
from dlnb.tabular.story import (
    ablation_summary,
    audit_effects,
    audit_summary,
    fixed_settings_note,
    left_out_note,
    own_csv_summary,
    real_table_summary,
    regime_summary,
    small_groups_note,
)
from dlnb.tabular.tables import (
    Table,
    check_target,
    infer_task,
    load_real_table,
    load_table,
    make_synthetic,
    reference_accuracy,
    synthetic_table,
    table_arrays,
    table_from_arrays,
    table_from_frame,
)
from dlnb.tabular.trials import Budget
from dlnb.tabular.verdicts import margin_over_baseline, real_records, scoreboard, timing_note

__all__ = [
    "MODELS",
    "NAMES",
    "COLORS",
    "Table",
    "check_target",
    "infer_task",
    "table_from_frame",
    "table_arrays",
    "table_from_arrays",
    "load_table",
    "from_csv",
    "fit_table",
    "TabularModel",
    "load_tabular",
    "make_synthetic",
    "synthetic_table",
    "parse_adult",
    "parse_california",
    "parse_covtype",
    "Preprocessor",
    "fit_preprocessor",
    "Split",
    "make_split",
    "suggest_params",
    "CategoricalEmbedding",
    "TabularMLP",
    "FTTransformer",
    "build_model",
    "Budget",
    "scores",
    "compare",
    "Audit",
    "Results",
    "scoreboard",
    "timing_note",
    "real_records",
    "margin_over_baseline",
    "EpochCount",
    "group_metrics",
    "disparities",
    "equal_fpr_thresholds",
    "apply_thresholds",
    "plot_group_metrics",
    "small_groups",
    "tradeoff",
    "load_real_table",
    "reference_accuracy",
    "plot_learning_curves",
    "ablation_summary",
    "audit_effects",
    "audit_summary",
    "fixed_settings_note",
    "left_out_note",
    "own_csv_summary",
    "real_table_summary",
    "regime_summary",
    "small_groups_note",
]
