"""The prompts shared by teachers and students.

The student is fine-tuned on exactly the messages built here and sees exactly the same messages at inference, so any
change to a template must bump :data:`PROMPT_VERSION` (adapters record the version they were trained with, and caches
of teacher annotations are keyed by it).

Every builder returns chat ``messages`` (a list of ``{"role", "content"}`` dicts); :func:`render` turns them into the
model's text with its chat template. Prompts put the query first so that batches of one query share a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import vocabulary

PROMPT_VERSION = "r2r-prompts-2"

SYSTEM_PROMPT = (
    "You are a search relevance judge. You read a search query and retrieved passages and explain, briefly and "
    "specifically, what each passage says that does or does not answer the query."
)

RELEVANCE_QUESTION = "Does the passage answer the query? Answer yes or no."
#: The answer words whose log-odds give the zero-shot LM relevance score.
RELEVANCE_ANSWERS: tuple[str, str] = ("yes", "no")

DIRECT_INSTRUCTION = (
    "In one or two sentences, say whether the passage is relevant to the query and why, naming the specific "
    "facts in the passage that answer it or that are missing."
)

#: How a verdict is shown to the explainer (the same words open the explanation): the core vocabulary's labels.
VERDICT_LABELS = vocabulary.VERDICT_LABELS

JUDGED_INSTRUCTION = (
    "In one sentence, explain this judgment: name the specific facts in the passage that answer the query, or what "
    "the passage is missing. Do not repeat the judgment word."
)

GROUNDED_COMPARISON_INSTRUCTION = (
    "The passages are listed from most to least relevant, each with its judgment and its best sentence. In two "
    "sentences, explain why they are ordered this way, citing them as [1], [2]... and naming the fact in their "
    "sentences that separates them. Use only what the sentences say."
)

COMPARISON_INSTRUCTION = (
    "The passages are listed from most to least relevant. In two or three sentences, explain why they are "
    "ordered this way: what the first passage gives that the later ones lack."
)

TEACHER_INSTRUCTION = (
    "Rank the passages by how well they answer the query, best first. For each passage give a verdict "
    '("relevant": it answers the query; "partial": it is on the topic but does not answer it; "not_relevant"), '
    "the sentence of the passage that best answers the query (copied exactly), a direct reason (why it is or is "
    "not relevant, citing what it says) and a comparison reason (why it is above or below the others). Answer "
    "with JSON only, in this form:\n"
    '{"ranking": [2, 1, 3], "reasons": [{"passage": 2, "verdict": "relevant", "evidence": "...", "direct": "...", '
    '"comparison": "..."}, ...], "comparison": "why the top passages are ordered as they are"}'
)


def relevance_messages(query: str, passage: str) -> list[dict[str, str]]:
    """Messages for pointwise yes/no relevance scoring of one passage (the LM scorer)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Query: {query}\n\nPassage: {passage}\n\n{RELEVANCE_QUESTION}"},
    ]


def direct_explanation_messages(query: str, passage: str, verdict: str | None = None,
                                evidence: str | None = None) -> list[dict[str, str]]:
    """Messages asking for a direct explanation of one passage's relevance.

    With a ``verdict`` (``"relevant"``, ``"partial"``, ``"not_relevant"``) and the passage's best sentence
    (``evidence``), the explainer is told the judgment and asked only why: the reason it writes follows the verdict
    words in the explanation. Without a verdict it is asked to judge and explain (the zero-shot form).
    """
    if verdict is None:
        task = DIRECT_INSTRUCTION
    else:
        best = f'\nBest sentence: "{evidence}"' if evidence else ""
        task = f"Judgment: {VERDICT_LABELS[verdict]}.{best}\n\n{JUDGED_INSTRUCTION}"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Query: {query}\n\nPassage: {passage}\n\n{task}"},
    ]


def _numbered(passages: Sequence[str]) -> str:
    return "\n\n".join(f"[{i}] {text}" for i, text in enumerate(passages, start=1))


def comparison_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """Messages asking why ``passages`` (already best first) are ordered as they are."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user",
         "content": f"Query: {query}\n\nPassages:\n\n{_numbered(passages)}\n\n{COMPARISON_INSTRUCTION}"},
    ]


def grounded_comparison_messages(query: str, evidences: Sequence[str | None],
                                 verdicts: Sequence[str | None]) -> list[dict[str, str]]:
    """Messages asking why passages (best first) are ordered as they are, from their judgments and best sentences."""
    lines = "\n".join(f"[{i}] {VERDICT_LABELS.get(v or '', 'Unjudged')}: \"{e or ''}\""
                      for i, (e, v) in enumerate(zip(evidences, verdicts), start=1))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Query: {query}\n\nPassages:\n{lines}\n\n{GROUNDED_COMPARISON_INSTRUCTION}"},
    ]


def teacher_listwise_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """Messages asking a teacher LLM to rank a window of passages and give R2R's direct and comparison reasons.

    Passages are numbered from 1 in the order given; the answer's ``ranking`` lists those numbers best first.
    """
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Query: {query}\n\nPassages:\n\n{_numbered(passages)}\n\n{TEACHER_INSTRUCTION}"},
    ]


def render(tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
    """Render ``messages`` to text with the tokenizer's chat template (plain ``role: content`` lines without one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + ("\n\nassistant:" if add_generation_prompt else "")
