"""The teacher's own verdict, read from its direct reason: ``"relevant"``, ``"partial"`` or ``"not_relevant"``.

R2R's GPT-4 teacher writes why each passage is (or is not) relevant, but not a label: "The passage directly answers
the query by stating...", "The passage does not directly answer the query, but it provides information about...",
"The passage does not mention X at all". These rules turn such reasons into the three verdicts, so that the
calibrator and the explainer learn the teacher's judgments (the R2R files' ``scores`` mark a positive in only 140
of 600 lists, so they cannot be the labels):

- ``not_relevant``: the reason says the passage is not relevant/related/useful, irrelevant, unrelated or has no
  information, before saying anything positive; or it only says what the passage does not mention/answer;
- ``relevant``: it says the passage directly answers/states/defines..., answers the query, or is relevant, with no
  "but", "however", "indirectly", "does not directly"... that takes it back;
- ``partial``: everything else (on the topic, indirect, partly answering).

Reading reasons with rules is imperfect; the rules are checked against hand-written reasons in the tests and the
share of each verdict per teacher rank is reported by ``r2r calibrate``.

Example:
    >>> teacher_verdict("The passage directly states that Scottsboro is in Jackson County.")
    'relevant'
    >>> teacher_verdict("The passage does not directly answer the query, but it describes Scottsboro.")
    'partial'
    >>> teacher_verdict("This passage is about cats, which is unrelated to the query.")
    'not_relevant'
"""

from __future__ import annotations

from r2r_agent.vocabulary import Verdict, graded_verdict


def teacher_verdict(reason: str) -> Verdict:
    """``"relevant"``, ``"partial"`` or ``"not_relevant"``, as the teacher's direct reason states it (see the
    module docs; the phrases and the rule are :func:`r2r_agent.vocabulary.graded_verdict`)."""
    return graded_verdict(reason)


__all__ = ["teacher_verdict"]
