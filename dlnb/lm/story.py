"""The lesson's sentences, written from its numbers: what ran, and what each result shows.

Each function returns Markdown. A sentence that states an effect comes from `Effect.sentence()`,
chosen by the interval's verdict, never by the sign of a difference.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from dlnb.claims import BaselineCheck, Effect, proportion_interval

_IDK = "I don't know"


def said(effect: Effect) -> str:
    """`effect.sentence()` with a capital first letter (names may start in lower case)."""
    text = effect.sentence()
    return text[:1].upper() + text[1:]


def path_note(
    smoke: bool, threads: int | None, device: str, rag_questions: int | None, seeds: int
) -> str:
    """Which path this run takes, and what the smoke path shrinks and cannot show."""
    where = f"Device: {device}; torch CPU threads: {threads or 'all cores'}."
    if not smoke:
        asked = "every test question" if rag_questions is None else f"{rag_questions} questions"
        return (
            f"**Full profile.** {where} A 4-layer decoder trained for longer, the LLM answers "
            f"{asked}, and section 4 compares LoRA with full fine-tuning of SmolLM2-135M itself "
            f"over {seeds} seeds."
        )
    return (
        f"**Smoke profile** (sized for a laptop CPU). {where} What shrinks: the decoder of "
        f"section 1 (2 layers, a few hundred steps); the LLM answers {rag_questions} test questions "
        "(the full profile answers all of them); and section 4 fine-tunes **section 1's decoder**, "
        "not SmolLM2, because fine-tuning a 135 M-parameter model "
        f"{2 * seeds} times needs a GPU. A 0.1 M-parameter model shows how LoRA is done and what "
        'it costs, not what it does for a large pretrained model: `PROFILE = "full"` runs that '
        "comparison on SmolLM2."
    )


def decoder_summary(effect: Effect, nll: Mapping[str, float], windows: int, pages: int) -> str:
    """The decoder against the counting baselines on held-out pages."""
    table = ", ".join(f"{name} {value:.3f}" for name, value in nll.items())
    text = (
        f"Held-out negative log-likelihood per character on {windows} windows from {pages} "
        f"held-out pages (nats; perplexity is its exponential): {table}. Windows of one page "
        "are not independent, so the comparison below averages each page's windows first and "
        "resamples pages. "
        f"{said(effect)} Judge its strength by its samples below: "
        "a decoder this small, trained this briefly, often loops under greedy decoding."
    )
    if effect.verdict != "better":
        text += (
            " The decoder has not yet learned more than which character tends to follow which: "
            "train it for longer (the full profile does)."
        )
    return text


def kv_cache_summary(check: Mapping) -> str:
    """What the KV cache saved, measured on the decoder."""
    same = (
        "the same tokens"
        if check["same_tokens"]
        else "DIFFERENT tokens (a bug: the cache must not change the result)"
    )
    ratio = check["tokens_per_s_cache"] / check["tokens_per_s_no_cache"]
    return (
        f"With and without the cache, greedy decoding gives {same}. Without it, each new token "
        f"recomputes every position before it: {check['positions_no_cache']} positions for "
        f"this generation against {check['positions_cache']} with the cache. Measured: "
        f"{check['tokens_per_s_cache']:.0f} tokens/s with the cache, "
        f"{check['tokens_per_s_no_cache']:.0f} without ({ratio:.1f}x). On a model this small "
        "each step costs mostly Python and kernel launches, so the saving in time is smaller "
        "than the saving in positions; it grows with the model and the context (section 2 "
        "measures it on the LLM)."
    )


def bits_summary(effect: Effect, bigram_bits: float) -> str:
    """The pretrained LLM against the section 1 decoder, in bits per character."""
    return (
        f"Bits per character on the same held-out page openings (lower is better; the bigram "
        f"model: {bigram_bits:.2f}). {said(effect)} Bits per character, unlike perplexity "
        "per token, compare models with different tokenisers."
    )


def decoding_summary(table: pd.DataFrame, samples: int, tokens: int) -> str:
    """What each decoding strategy did in this run's samples (measured, not a general claim)."""
    rows = table.set_index("strategy")
    most = rows["repeated 3-grams"].idxmax()
    least = rows["distinct-2"].idxmin()
    repeats = (
        f"the most repetition within a sample came from **{most}** "
        f"({rows.at[most, 'repeated 3-grams']:.2f} of its 3-grams repeat an earlier one)"
        if rows.at[most, "repeated 3-grams"] > 0
        else "no strategy repeated a 3-gram within a sample"
    )
    return (
        f"Measured on {samples} samples of up to {tokens} tokens per strategy from one prompt: "
        f"{repeats}; the least diversity across samples came from **{least}** (distinct-2 "
        f"{rows.at[least, 'distinct-2']:.2f}; a strategy that does not sample gives the same text "
        "every time). Sampling buys diversity, and these diversity numbers also reward nonsense: "
        "text that wanders off the question scores as diverse (read the samples). By design, "
        "top-k and top-p cut the unlikely tail that pure temperature sampling draws from; that "
        "is their mechanism, not something measured here. The repetition penalty pushes the "
        "model off words it has already written, into other words, not always better ones. A "
        "few samples of one prompt illustrate the strategies; they do not measure them in "
        "general."
    )


def retrieval_summary(table: pd.DataFrame, effects: list[Effect], weight: float) -> str:
    """Which retriever found the right page, with intervals over the test questions."""
    best = table["recall@1"].idxmax()
    lines = [
        f"The hybrid weight {weight:g} (on the BM25 side) was chosen on the tuning questions; "
        f"the test questions never took part. Best recall@1 on them: **{best}** "
        f"({table.at[best, 'recall@1']:.3f})."
    ]
    lines += [f"- {said(e)}" for e in effects]
    return "\n".join(lines)


def _interval(rate: float, n: int) -> str:
    """ "k of n (95 % Wilson interval low to high)" for a share `rate` of `n` questions."""
    k = round(rate * n)
    low, high = proportion_interval(k, n)
    return f"{k} of {n} (95 % Wilson interval {low:.2f} to {high:.2f})"


def rag_summary(
    rates: Mapping[str, Mapping[str, float]],
    n: int,
    right_page: float,
    recall1: float,
    recall_questions: int,
) -> str:
    """Answers with and without the retrieved page, what the comparison can and cannot show.

    Args:
        rates: outcome shares per condition ("with retrieval", "closed-book").
        n: questions asked in each condition.
        right_page: share of questions whose cited page was their source page.
        recall1: the hybrid retriever's recall@1 on every test question.
        recall_questions: how many test questions that recall@1 was measured on.
    """
    shown = "; ".join(
        f"**{name}**: the page's number in {_interval(r['correct'], n)}, "
        f'{r["hallucinated"]:.0%} another number, {r["abstained"]:.0%} "I don\'t know"'
        for name, r in rates.items()
    )
    return (
        f"{shown}. Read this comparison for what it is: the questions ask for a row count that "
        'the retrieved page states ("A data frame with N rows"), and both conditions start the '
        'answer with "The number of rows is", so closed-book the model can neither say it does '
        "not know nor know the number from its weights: its score is low **by construction**. "
        "What it shows is that retrieval supplies facts the weights lack on a copy-from-context "
        "task, not that retrieval lowers hallucination in general. An answer counts as right "
        "when the page's number is among the numbers it states, anywhere in it. The cited page "
        f"was the question's source page for {right_page:.0%} of these questions; the hybrid's "
        f"recall@1 of {recall1:.3f} on all {recall_questions} test questions means about "
        f"{1 - recall1:.0%} of questions get a wrong page, and then the model reads that "
        "page's number."
    )


def abstain_summary(
    threshold: float, missing: Mapping[str, float], answerable: float, n: int
) -> str:
    """The stated behaviour for questions with no relevant page, and how well it works here."""
    lucky = (
        f", and gave the asked number for {missing['correct']:.0%} (right number, wrong page: "
        "another page states the same count)"
        if missing["correct"] > 0
        else ""
    )
    return (
        f"The system answers only when the best page's cosine similarity to the question is at "
        f"least {threshold:.3f} (the value that keeps 95 % of the tuning questions answered), "
        f'and otherwise says "{_IDK}". On questions whose page is not in the index it said so '
        f"for {_interval(missing['abstained'], n)}, answered "
        f"{missing['hallucinated']:.0%} with a wrong page's number{lucky}; on answerable test "
        f"questions it held back {answerable:.0%}. Pages about similar datasets look alike to "
        "the embedding, so a similarity threshold catches only part of the unanswerable "
        'questions: "a question with no relevant page gets I don\'t know" holds here only '
        "partly."
    )


def _learned(check: BaselineCheck) -> str:
    """Whether a fine-tuning method beat the most frequent field, worded for this section."""
    name = check.name[:1].upper() + check.name[1:]
    shown = f"{check.mean:.3f} (95 % CI from {check.low:.3f}, {check.n} seeds)"
    if check.learned:
        return f"{name} learned the task: {shown} against {check.reference:.3f}."
    return (
        f"{name} did not clearly learn the task: {shown}; its interval does not clear the "
        f"{check.reference:.3f} of always answering the most frequent field by {check.margin:g}, "
        "so comparisons with it are weak evidence."
    )


def lora_summary(
    effect: Effect,
    share: float,
    base: float,
    majority: float,
    checks: list[BaselineCheck],
    model: str,
) -> str:
    """LoRA against full fine-tuning: the share trained, whether both learned, the claim."""
    learned = " ".join(_learned(c) for c in checks)
    text = (
        f"LoRA trains {share:.2%} of {model}'s parameters. Before fine-tuning, the model picks "
        f"the right field for {base:.3f} of the test pages (always answering the most frequent "
        f"field scores {majority:.3f}). {learned} {said(effect)}"
    )
    if effect.verdict == "equivalent":
        return text + " LoRA reaches full fine-tuning's accuracy within the stated band."
    return (
        text
        + " So this run does **not** show that LoRA reaches full fine-tuning's accuracy"
        + (": the interval is too wide to say either way." if effect.verdict != "worse" else ".")
    )
