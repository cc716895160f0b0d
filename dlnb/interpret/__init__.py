"""Interpretability: Captum attributions, sanity checks, tabular attributions, plots, widgets."""

from __future__ import annotations

from dlnb.interpret.attribution import (
    BASELINES,
    METHODS,
    TEXT_REFERENCES,
    Attribution,
    TokenAttribution,
    attribute,
    attribute_text,
    find_layer,
    forward_logits,
    last_conv_layer,
    make_baseline,
    merge_words,
    relative_delta,
    resolve_targets,
)
from dlnb.interpret.plots import (
    as_image,
    figure_png,
    normalise_heatmap,
    plot_agreement,
    plot_importance,
    plot_methods,
    plot_overlay,
    plot_sanity,
    plot_tokens,
    plot_top_predictions,
    tokens_html,
)
from dlnb.interpret.sanity import SanityResult, compare_methods, sanity_check, spearman
from dlnb.interpret.tabular import attribute_tabular, importance_table, xgboost_importance
from dlnb.interpret.widgets import ImageAttributionExplorer, TextAttributionView

__all__ = [
    "METHODS",
    "BASELINES",
    "Attribution",
    "TokenAttribution",
    "find_layer",
    "last_conv_layer",
    "make_baseline",
    "forward_logits",
    "resolve_targets",
    "relative_delta",
    "attribute",
    "attribute_text",
    "TEXT_REFERENCES",
    "merge_words",
    "SanityResult",
    "spearman",
    "compare_methods",
    "sanity_check",
    "attribute_tabular",
    "xgboost_importance",
    "importance_table",
    "as_image",
    "normalise_heatmap",
    "plot_overlay",
    "plot_methods",
    "plot_top_predictions",
    "tokens_html",
    "plot_tokens",
    "plot_sanity",
    "plot_agreement",
    "plot_importance",
    "figure_png",
    "ImageAttributionExplorer",
    "TextAttributionView",
]
