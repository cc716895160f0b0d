"""The sentences of the interpretability lesson, each chosen by what the run measured.

Every function returns Markdown built from its arguments; a notebook shows it with
`display(Markdown(...))`. Tests cover each outcome (converged or not, passed / failed /
borderline, maps that differ or do not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlnb.interpret.sanity import SanityResult


def convergence_summary(steps: int, worst: float, tolerance: float) -> str:
    """Whether Integrated Gradients converged: its largest relative delta against `tolerance`."""
    head = f"With {steps} steps the largest relative delta is **{worst:.1%}**: "
    if worst <= tolerance:
        return head + (
            f"under the {tolerance:.0%} tolerance, so the attributions add up to "
            "`f(photo) - f(baseline)` to within that share, and the maps above are computed "
            "accurately enough to read (whether they explain the model is section 3's question)."
        )
    return head + (
        f"above the {tolerance:.0%} tolerance, so the maps above are a rough sketch: raise "
        "`IG_STEPS` before you read them."
    )


def step_sweep_summary(deltas: Mapping[int, float], tolerance: float) -> str:
    """The relative delta at each step count: the fewest under `tolerance`, and any rise."""
    steps = sorted(deltas)
    text = "Relative delta by steps: " + ", ".join(f"{n}: {deltas[n]:.1%}" for n in steps) + ". "
    under = [n for n in steps if deltas[n] <= tolerance]
    text += (
        f"The fewest steps under the tolerance here: {under[0]}. "
        if under
        else "No step count tried is under the tolerance. "
    )
    rises = [(a, b) for a, b in zip(steps, steps[1:], strict=False) if deltas[b] > deltas[a]]
    if rises:
        a, b = rises[0]
        return text + (
            f"The delta is not monotone (it rises from {a} to {b} steps): a small delta at one "
            "step count can be luck."
        )
    return text + "Here the delta falls with every step count tried."


def class_pairs_summary(
    pairs: Sequence[tuple[str, str, str]], similarity: Mapping[str, float], bound: float
) -> str:
    """One bullet per (photo, class a, class b): do Grad-CAM's maps of the two classes differ?"""
    lines = []
    for photo, a, b in pairs:
        rho = similarity[photo]
        if rho < bound:
            verdict = (
                f"below {bound}: the maps differ, so the two classes are found in different places."
            )
        else:
            verdict = (
                f"at or above {bound}: the maps are practically the same, so on this photo "
                "Grad-CAM cannot show what separates the two classes; both are read off the same "
                "region."
            )
        lines.append(
            f"* **{photo}**, '{a}' against '{b}': Spearman between the two maps {rho:.2f}, {verdict}"
        )
    return "\n".join(lines)


def _interval(result: SanityResult) -> str:
    mean, low, high = result.interval()
    n = len(result.per_sample) or 1
    if n < 2:
        return f"{mean:+.2f} on one sample, no interval"
    return f"{mean:+.2f} (95 % CI {low:+.2f} to {high:+.2f} over {n} samples)"


def sanity_summary(results: Mapping[str, SanityResult], model_name: str) -> str:
    """Which methods' maps count as evidence about `model_name`, from their sanity verdicts.

    Passed: the maps change when the weights do. Failed or borderline: the maps are not evidence
    of what the model uses (said with what to use instead). Methods checked with every layer
    randomised at once (mode "full") are named, since their curve has one step.
    """
    bound = next(iter(results.values())).bound
    lines = [
        f"* **{m}**: {r.verdict}, Spearman with the randomised model {_interval(r)}."
        for m, r in results.items()
    ]
    text = f"Sanity check on {model_name} (bound {bound}):\n" + "\n".join(lines) + "\n\n"
    return text + _evidence(results, model_name) + _caveats(results)


def _evidence(results: Mapping[str, SanityResult], model_name: str) -> str:
    """Which maps are evidence, which are not, and what to do about those."""
    passed = [m for m, r in results.items() if r.passed]
    doubtful = [m for m, r in results.items() if not r.passed]
    text = (
        f"Evidence about {model_name}: the maps of {', '.join(passed)}, which change when its "
        "weights do. "
        if passed
        else f"No method tried here passed on {model_name}: none of its maps is evidence. "
    )
    if not doubtful:
        return text + ("It passed." if len(results) == 1 else "Every method tried passed.")
    return text + (
        f"**Not evidence:** {', '.join(doubtful)}. Their maps are explained as much by the input "
        "as by what the network learned, so they are labelled as such wherever they appear below "
        "and the explorer does not open on them. To use one, change its setup (another baseline, "
        "another target) and run the check again."
    )


def _caveats(results: Mapping[str, SanityResult]) -> str:
    """Verdicts without an interval, and checks that randomised every layer at once."""
    text = ""
    if any(len(r.per_sample) < 2 for r in results.values()):
        text += (
            " A verdict on one sample rests on a single value, without an interval: it says "
            "what the check found for that map, not for the method on this model in general."
        )
    full = [m for m, r in results.items() if r.mode == "full"]
    if full:
        text += (
            f"\n\n{', '.join(full)} {'was' if len(full) == 1 else 'were'} checked with every layer "
            "randomised at once instead of layer by layer: one randomised map instead of one per "
            "step, to keep this profile short on a CPU. The verdict reads the same last step, "
            "with every layer randomised."
        )
    return text


def unchecked_note(methods: Sequence[str], sanity: Mapping[str, SanityResult]) -> str:
    """Before the check: these maps are hypotheses; after it, which ones held."""
    if not sanity:
        return (
            f"None of these {len(methods)} maps is evidence yet: each is only a picture until the "
            "sanity check (section 3) shows that it depends on what the model learned."
        )
    unchecked = [m for m in methods if m not in sanity]
    if not unchecked:
        return "Every method shown here was sanity-checked; the titles give each verdict."
    return (
        f"Not sanity-checked in this run: {', '.join(unchecked)}; their maps are labelled so and "
        "are not evidence."
    )


def sanity_title(model_name: str, modes: Sequence[str]) -> str:
    """The sanity plot's title, naming how the layers were randomised in the modes that ran."""
    names = {"cascading": "layer by layer", "full": "all layers at once"}
    ran = sorted({names.get(m, m) for m in modes})
    return f"{model_name}: randomisation {' and '.join(ran)}"


def typed_summary(texts: Sequence[str], predicted: Sequence[str], expected: Sequence[str]) -> str:
    """What the model made of sentences typed for the lesson: which of those with an obvious
    answer (`expected` not '') it got wrong, and the reason to look for in its training domain."""
    obvious = [(t, p, e) for t, p, e in zip(texts, predicted, expected, strict=True) if e]
    wrong = [f'"{t}" (called {p}, plainly {e})' for t, p, e in obvious if p != e]
    if not wrong:
        return (
            f"All {len(obvious)} typed sentences with an obvious answer come back right; "
            "that is a handful of sentences, not an accuracy."
        )
    return (
        f"{len(wrong)} of the {len(obvious)} typed sentences with an obvious answer come back "
        f"wrong: {'; '.join(wrong)}. The probe learned from tweets, whose sentiment is often "
        "carried by topic words (an event, a brand, a news story) rather than by words such as "
        "*love*; a short sentence without those cues is outside what it learned, so it is not "
        "a model to trust on free typing, whatever its accuracy on tweets."
    )
