"""dlnb.interpret.story: each sentence of the interpretability lesson follows what was measured."""

from __future__ import annotations

from dlnb.interpret.sanity import SanityResult
from dlnb.interpret.story import (
    class_pairs_summary,
    convergence_summary,
    sanity_summary,
    step_sweep_summary,
    unchecked_note,
)


def _result(method, per_sample, mode="cascading"):
    mean = sum(per_sample) / len(per_sample)
    return SanityResult(method, mode, ["all layers"], [mean], 0.5, per_sample)


def test_convergence_is_read_against_the_tolerance():
    ok = convergence_summary(64, 0.011, 0.05)
    assert "**1.1%**" in ok and "under the 5% tolerance" in ok and "raise" not in ok
    rough = convergence_summary(16, 0.31, 0.05)
    assert "**31.0%**" in rough and "above the 5% tolerance" in rough and "IG_STEPS" in rough


def test_the_step_sweep_names_the_fewest_steps_under_tolerance_and_any_rise():
    rising = step_sweep_summary({8: 0.93, 16: 0.31, 32: 0.41, 64: 0.011}, 0.05)
    assert "8: 93.0%, 16: 31.0%, 32: 41.0%, 64: 1.1%" in rising
    assert "fewest steps under the tolerance here: 64" in rising
    assert "rises from 16 to 32 steps" in rising
    falling = step_sweep_summary({32: 0.2, 8: 0.9, 16: 0.4}, 0.05)  # sorted by steps
    assert "No step count tried is under the tolerance" in falling
    assert "falls with every step count" in falling and "8: 90.0%" in falling.split(",")[0]


def test_class_pairs_differ_or_not_by_the_bound():
    pairs = [("astronaut", "football helmet", "ski"), ("coffee", "espresso", "cup")]
    text = class_pairs_summary(pairs, {"astronaut": 0.05, "coffee": 0.98}, 0.5)
    astronaut, coffee = text.splitlines()
    assert "maps 0.05, below 0.5: the maps differ" in astronaut
    assert "maps 0.98, at or above 0.5: the maps are practically the same" in coffee
    assert "np.str_" not in text and "'football helmet'" in astronaut


def test_sanity_summary_for_each_verdict():
    results = {
        "saliency": _result("saliency", [0.1, 0.12, 0.09]),
        "integrated_gradients": _result("integrated_gradients", [0.62, 0.6, 0.64]),
        "smoothgrad": _result("smoothgrad", [0.2, 0.7, 0.3, 0.6]),
    }
    text = sanity_summary(results, "LeNet-5")
    assert "**saliency**: passed" in text and "**integrated_gradients**: failed" in text
    assert "**smoothgrad**: borderline" in text and "95 % CI" in text
    assert "Evidence about LeNet-5: the maps of saliency" in text
    assert "**Not evidence:** integrated_gradients, smoothgrad" in text
    assert "explorer does not open on them" in text and "at once" not in text
    none = sanity_summary({"integrated_gradients": results["integrated_gradients"]}, "LeNet-5")
    assert "No method tried here passed on LeNet-5" in none
    passed = sanity_summary(
        {"saliency": results["saliency"], "occlusion": _result("occlusion", [0.2], mode="full")},
        "EfficientNet-Lite0",
    )
    assert "Every method tried passed" in passed and "Not evidence" not in passed
    assert "occlusion was checked with every layer randomised at once" in passed
    assert "+0.20 on one sample, no interval" in passed and "without an interval" in passed
    assert "without an interval" not in text  # every result there has several samples
    alone = sanity_summary({"text": _result("text", [0.1, -0.1, 0.05])}, "the probe")
    assert "It passed." in alone and "Every method" not in alone


def test_unchecked_note_before_and_after_the_check():
    methods = ["saliency", "occlusion"]
    assert "None of these 2 maps is evidence yet" in unchecked_note(methods, {})
    some = unchecked_note(methods, {"saliency": _result("saliency", [0.1, 0.1])})
    assert "Not sanity-checked in this run: occlusion" in some
    every = {m: _result(m, [0.1, 0.1]) for m in methods}
    assert "Every method shown here was sanity-checked" in unchecked_note(methods, every)


def test_typed_summary_names_the_obvious_sentences_it_gets_wrong():
    from dlnb.interpret.story import typed_summary

    texts = ["I love this", "awful day", "meeting at 3"]
    wrong = typed_summary(texts, ["negative", "negative", "positive"], ["positive", "negative", ""])
    assert wrong.startswith("1 of the 2 typed") and '"I love this" (called negative' in wrong
    assert "meeting" not in wrong and "tweets" in wrong
    right = typed_summary(texts, ["positive", "negative", "negative"], ["positive", "negative", ""])
    assert right.startswith("All 2 typed sentences") and "love" not in right


def test_sanity_title_says_how_the_layers_were_randomised():
    from dlnb.interpret.story import sanity_title

    assert sanity_title("Net", ["cascading"]) == "Net: randomisation layer by layer"
    both = sanity_title("Net", ["cascading", "full", "full"])
    assert both == "Net: randomisation all layers at once and layer by layer"
