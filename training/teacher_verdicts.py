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

import re

_NEGATIVE = re.compile(r"\b(?:not\s+(?:\w+\s+){0,2}?(?:relevant|related|useful|helpful|applicable|pertinent)|"
                       r"irrelevant|unrelated|off-topic|no\s+(?:relevant\s+|useful\s+)?information)\b", re.IGNORECASE)
_LACKS = re.compile(r"\b(?:does|do|did)(?:\s+not|n['’]t)\s+(?!directly\b)(?:\w+\s+){0,2}?(?:answer|address|mention|"
                    r"discuss|provide|contain|explain|relate|cover|say|give|include|specify|define)", re.IGNORECASE)
_HEDGE = re.compile(r"\b(?:(?:does|do|did)(?:\s+not|n['’]t)\s+directly|not\s+directly|indirectly|partially|partly|"
                    r"somewhat|tangential|loosely|less\s+(?:information|relevant|detail)|but|however|although|"
                    r"while|only\s+mentions)\b", re.IGNORECASE)
_POSITIVE = re.compile(r"\b(?:directly\s+(?:answers|addresses|states|mentions|defines|provides|relates|explains|"
                       r"responds|gives|lists|describes|confirms)|answers\s+the\s+(?:query|question)|"
                       r"provides\s+(?:a\s+|the\s+)?(?:clear|direct|specific|precise|detailed|comprehensive|complete)"
                       r"\s+(?:answer|definition|explanation)|(?:is|are)\s+(?:highly\s+|directly\s+|very\s+)?relevant"
                       r"|clearly\s+(?:states|defines|explains))\b", re.IGNORECASE)
_CONTRAST_BEFORE = re.compile(r"\b(?:but|however|although|while|mentions|provides|discusses|describes|explains)\b",
                              re.IGNORECASE)


def teacher_verdict(reason: str) -> str:
    """``"relevant"``, ``"partial"`` or ``"not_relevant"``, as the teacher's direct reason states it (see the
    module docs)."""
    negative = _NEGATIVE.search(reason)
    positive = _POSITIVE.search(reason)
    if negative and (positive is None or negative.start() < positive.start()):
        return "not_relevant"
    lacks = _LACKS.search(reason)
    if lacks and positive is None and not _CONTRAST_BEFORE.search(reason, 0, lacks.start()) \
            and not re.search(r"\bbut\b", reason[lacks.end():], re.IGNORECASE):
        return "not_relevant"
    if positive is not None and not _HEDGE.search(reason):
        return "relevant"
    return "partial"


__all__ = ["teacher_verdict"]
