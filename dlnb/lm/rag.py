"""Retrieval-augmented generation, scored automatically: grounded answers, citations, hallucinations.

    prompts = [rag_prompt(tok, q, page_name, passage) for ...]       # the retrieved page as context
    answers = generate(llm, prompts, max_new_tokens=16)
    outcome = [score_answer(a, fact) for a, fact in zip(answers, facts)]

Each answer is one of three outcomes: `correct` (it states the page's number), `abstained` (it
says it does not know, and states no number) or `hallucinated` (it states something else: a
confident answer that is wrong). The system abstains before asking the model when the best page
is not similar enough to the question (`Abstainer`), so a question with no relevant page in the
corpus can get "I don't know" instead of an answer made up from the wrong page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OUTCOMES = ("correct", "abstained", "hallucinated")
IDK = "I don't know: no page in the corpus is close enough to this question."
_IDK_WORDS = re.compile(
    r"\b(don'?t know|do not know|not sure|cannot (?:find|determine|answer)|no information)\b",
    re.IGNORECASE,
)


def rag_prompt(tokenizer, question: str, page: str, passage: str) -> str:
    """A chat prompt giving `passage` (from page `page`) as context for `question`."""
    from dlnb.lm.llm import chat_prompt

    user = (
        f"Context, from the R documentation page '{page}':\n{passage}\n\n"
        f"Question: {question}\nAnswer with the number from the context."
    )
    return chat_prompt(tokenizer, user)


def closed_book_prompt(tokenizer, question: str) -> str:
    """The same question with no context: the model answers from its weights alone."""
    from dlnb.lm.llm import chat_prompt

    return chat_prompt(tokenizer, f"Question: {question}\nAnswer with the number.")


def numbers(text: str) -> list[int]:
    """The whole numbers stated in `text` ("53,940 rows" -> [53940])."""
    return [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", text)]


def score_answer(answer: str, fact: str | int) -> str:
    """`correct` when the answer states `fact`, `abstained` when it says it does not know and
    states no number, else `hallucinated`."""
    stated = numbers(answer)
    if int(fact) in stated:
        return "correct"
    if not stated and (_IDK_WORDS.search(answer) or answer.strip() == ""):
        return "abstained"
    return "hallucinated"


def rates(outcomes: Sequence[str]) -> dict[str, float]:
    """The share of each outcome."""
    if not outcomes:
        raise ValueError("rates needs at least one outcome.")
    bad = sorted(set(outcomes) - set(OUTCOMES))
    if bad:
        raise ValueError(f"Unknown outcomes {bad}; expected {OUTCOMES}.")
    return {o: float(np.mean([x == o for x in outcomes])) for o in OUTCOMES}


@dataclass(frozen=True)
class Abstainer:
    """Answer only when the best page's similarity to the question reaches `threshold`."""

    threshold: float

    @classmethod
    def calibrate(cls, best_scores: Sequence[float], keep: float = 0.95) -> Abstainer:
        """The threshold that keeps `keep` of these (answerable, tuning) questions answered."""
        scores = np.asarray(best_scores, dtype=float)
        if scores.size == 0:
            raise ValueError("Abstainer.calibrate needs the best scores of some tuning questions.")
        return cls(float(np.quantile(scores, 1 - keep)))

    def answers(self, best_scores: Sequence[float]) -> np.ndarray:
        """True where the system answers, False where it says it does not know."""
        return np.asarray(best_scores, dtype=float) >= self.threshold


def answer_table(answers: Sequence[str], facts: Sequence, answered: Sequence[bool] | None = None):
    """Outcomes of `answers`: an answer the system held back (`answered` False) is an abstention."""
    answered = [True] * len(answers) if answered is None else list(answered)
    if not (len(answers) == len(facts) == len(answered)):
        raise ValueError("answers, facts and answered must have the same length.")
    return [
        score_answer(a, f) if ok else "abstained"
        for a, f, ok in zip(answers, facts, answered, strict=True)
    ]


def no_page_view(table):
    """The no-relevant-page answers for display: a right number read from a wrong page is shown as
    "right number, wrong page", not "correct"."""
    view = table[["question", "answer", "outcome"]].copy()
    view["outcome"] = view["outcome"].replace({"correct": "right number, wrong page"})
    return view


def rag_records(outcomes: dict[str, Sequence[str]]) -> dict[str, float | bool]:
    """Share right and its 95 % Wilson interval per condition ("rag", "closed"), and whether the
    retrieval interval lies wholly above the closed-book one (the gated claim)."""
    from dlnb.claims import proportion_interval

    out: dict[str, float | bool] = {}
    for name, values in outcomes.items():
        k = sum(v == "correct" for v in values)
        low, high = proportion_interval(k, len(values))
        out |= {f"{name}_correct": k / len(values), f"{name}_correct_low": low}
        out[f"{name}_correct_high"] = high
    out["rag_beats_closed"] = bool(out["rag_correct_low"] > out["closed_correct_high"])
    return out
