"""The project's words, in one place: the verdicts and their labels, the verdict phrases an explanation or a teacher's
reason uses (and their negations), and the word tokens and content words that text measures and the calibrator count.

Every package reads these from here: the core (explanations, prompts, calibration), ``training`` (the teacher's
verdict, the parser of teacher answers) and ``evals`` (the verdict an explanation states, the text measures).

Verdicts:
    ``"relevant"`` (the passage answers the query), ``"partial"`` (on the topic, does not answer it) and
    ``"not_relevant"``; :data:`VERDICT_LABELS` opens explanations and prompts, :func:`verdict_from_label` reads what a
    teacher wrote (``"Partly relevant"``, ``"irrelevant"``...).

Verdict phrases (:func:`verdict_phrases`): one reader finds, in any text, the phrases that deny relevance (``not
relevant``, ``not directly related``, ``isn't useful``, ``irrelevant``, ``unrelated``, ``off-topic``, ``no
information``, a leading ``No``), the phrases that say something is missing (``does not answer/mention/...``,
``doesn't directly address``, ``cannot answer``, ``fails to explain``, ``no mention``), those that affirm it (``is
relevant``, ``relevant to``, ``answers``, ``addresses``, ``directly states``, ``provides a clear answer``, a leading
``Yes``/``Relevant``) and hedges (``but``, ``however``, ``indirectly``, ``partly``...). An affirmation inside a
negation ("does not answer" holds "answer") is dropped. Three policies decide on top of it, each where its meaning
lives: the verdict an explanation states first (:func:`stated_verdict`, used by ``evals``), the graded verdict of a
teacher's reason (:func:`graded_verdict`, used by ``training``), and whether a reason contradicts its verdict
(:func:`contradicts`, used by the explainer stage).

Words (:func:`tokenize`, :func:`content_words`): lowercased runs of letters and digits, an inner apostrophe kept
(``doesn't``); content words drop a stop-word list and fold an ending. Two settings exist and are frozen: the
calibrator's (:data:`QUERY_STOP_WORDS`, :func:`stem`, split at apostrophes: its fitted weights depend on them) and
the text measures' (:data:`STOP_WORDS`, :func:`fold_plural`).

Example:
    >>> graded_verdict("The passage does not directly answer the query, but it describes Scottsboro.")
    'partial'
    >>> stated_verdict("The passage is relevant, though it does not mention the exact cost.")
    'relevant'
    >>> contradicts("It is about tax, which is not directly related to the query.", "relevant")
    True
    >>> content_words("The fleas live for two months")
    ['flea', 'live', 'two', 'month']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

# ----------------------------------------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------------------------------------

#: What a judgment says about a passage.
Verdict = Literal["relevant", "partial", "not_relevant"]
#: The verdicts, best first.
VERDICTS: tuple[Verdict, ...] = ("relevant", "partial", "not_relevant")
#: How each verdict opens an explanation or is shown to the explainer.
VERDICT_LABELS: dict[str, str] = {"relevant": "Relevant", "partial": "Partly relevant", "not_relevant": "Not relevant"}
#: How strongly each verdict says the passage answers (to check that an order follows the verdicts).
VERDICT_STRENGTH: dict[str, int] = {"relevant": 2, "partial": 1, "not_relevant": 0}

_LABEL_WORDS: dict[str, Verdict] = {
    "relevant": "relevant", "highly relevant": "relevant", "partial": "partial", "partially relevant": "partial",
    "partly relevant": "partial", "not_relevant": "not_relevant", "not relevant": "not_relevant",
    "irrelevant": "not_relevant"}


def verdict_from_label(label: str) -> Verdict | None:
    """The verdict a label names (``"Relevant"``, ``"partly relevant"``, ``"not-relevant."``), or ``None``.

    Example:
        >>> verdict_from_label("Partly relevant."), verdict_from_label("maybe")
        ('partial', None)
    """
    return _LABEL_WORDS.get(label.lower().replace("-", " ").strip(". "))


# ----------------------------------------------------------------------------------------------------------------
# Verdict phrases
# ----------------------------------------------------------------------------------------------------------------

_QUALITIES = r"(?:relevant|related|useful|helpful|applicable|pertinent)"
_MISSING = (r"(?:answer|address|mention|discuss|provide|contain|explain|relate|cover|say|give|include|specify|"
            r"define)")
# Says the passage is not relevant.
_DENIAL = re.compile(
    rf"""
    ^\s*no\b
    | \bnot\s+(?:\w+\s+){{0,2}}?{_QUALITIES}\b
    | \b(?:is|are|was|were)n['’]t\s+(?:\w+\s+){{0,2}}?{_QUALITIES}\b
    | \b(?:irrelevant|unrelated|off-topic|off\s+topic)\b
    | \bno\s+(?:relevant\s+|useful\s+)?information\b
    """, re.IGNORECASE | re.VERBOSE)
# Says something is missing; group "direct" is set when only a direct answer is ("does not directly answer").
_LACK = re.compile(
    rf"""
    \b(?:does|do|did)(?:\s+not|n['’]t)\s+(?P<direct>directly\s+)?(?:\w+\s+){{0,2}}?{_MISSING}
    | \b(?:cannot|can['’]t|can\s+not)\s+(?:\w+\s+){{0,2}}?answer
    | \bfails?\s+to\s+(?:answer|address|mention|explain|provide)
    | \bno\s+(?:relevant\s+|useful\s+)?(?:mention|answer)\b
    """, re.IGNORECASE | re.VERBOSE)
_AFFIRMATION = re.compile(
    r"""
    ^\s*(?:yes|relevant)\b
    | \b(?:is|are|was|were|be|seems|appears)\s+(?:(?!least\b|less\b)\w+\s+){0,2}?(?:relevant|useful|helpful|pertinent)\b
    | (?<!least\s)(?<!less\s)\brelevant\s+(?:to|for|because|since|as)\b
    | \b(?:answers|addresses)\b
    | \b(?:does|do)\s+(?:\w+\s+)?answer\b
    | \bdirectly\s+(?:answers|addresses|states|mentions|defines|provides|relates|explains|responds|gives|lists|
                     describes|confirms)\b
    | \bprovides\s+(?:a\s+|the\s+)?(?:clear|direct|specific|precise|detailed|comprehensive|complete)\s+
        (?:answer|definition|explanation)\b
    | \bclearly\s+(?:states|defines|explains)\b
    """, re.IGNORECASE | re.VERBOSE)
_HEDGE = re.compile(r"\b(?:(?:does|do|did)(?:\s+not|n['’]t)\s+directly|not\s+directly|indirectly|partially|partly|"
                    r"somewhat|tangential|loosely|less\s+(?:information|relevant|detail)|but|however|although|though|"
                    r"while|only\s+mentions)\b", re.IGNORECASE)
_CONTRAST = re.compile(r"\b(?:but|however|although|while|mentions|provides|discusses|describes|explains)\b",
                       re.IGNORECASE)

# Ends the reach of a negation: "does not mention X, but it is relevant", "It does not answer; it is relevant".
_CLAUSE_BREAK = re.compile(r"[,;.:!?]|\b(?:but|however|although|though|yet)\b", re.IGNORECASE)
_ANSWER = re.compile(r"(?:answer|address)\w*$", re.IGNORECASE)

Span = tuple[int, int]


@dataclass(frozen=True)
class VerdictPhrases:
    """The verdict phrases found in a text, as ``(start, end)`` character spans in order.

    Attributes:
        denials: Phrases saying the passage is not relevant ("not directly related", "irrelevant", a leading "No").
        lacks: Phrases saying something is missing ("does not mention", "cannot answer", "no mention").
        direct_lacks: The lacks that only deny a *direct* answer ("does not directly answer"): a hedge.
        unanswered: The lacks that deny an answer ("does not (directly) answer/address", "cannot answer").
        affirmations: Phrases saying it is relevant or answers, none inside a denial or a lack.
        hedged: Whether the text hedges ("but", "however", "indirectly", "partly", "not directly"...).
    """

    denials: tuple[Span, ...]
    lacks: tuple[Span, ...]
    direct_lacks: tuple[Span, ...]
    unanswered: tuple[Span, ...]
    affirmations: tuple[Span, ...]
    hedged: bool

    @property
    def negations(self) -> tuple[Span, ...]:
        """Denials and lacks together, in order."""
        return tuple(sorted(self.denials + self.lacks))


def verdict_phrases(text: str) -> VerdictPhrases:
    """Find the verdict phrases of ``text`` (see the module docs): the one reader of verdict wording.

    Example:
        >>> found = verdict_phrases("It does not answer the query.")
        >>> found.lacks, found.affirmations
        (((3, 18),), ())
    """
    denials = tuple(m.span() for m in _DENIAL.finditer(text))
    lack_matches = list(_LACK.finditer(text))
    lacks = tuple(m.span() for m in lack_matches)
    negated = denials + lacks
    affirmations = tuple(m.span() for m in _AFFIRMATION.finditer(text)
                         if not any(m.start() < end and start < m.end() for start, end in negated)
                         and not any(end <= m.start() and not _CLAUSE_BREAK.search(text, end, m.start())
                                     for start, end in negated))
    return VerdictPhrases(denials=denials, lacks=lacks,
                          direct_lacks=tuple(m.span() for m in lack_matches if m.group("direct")),
                          unanswered=tuple(m.span() for m in lack_matches if _ANSWER.search(m.group())),
                          affirmations=affirmations, hedged=_HEDGE.search(text) is not None)


def stated_verdict(text: str | None) -> Literal["relevant", "not_relevant"] | None:
    """The verdict a text states first: ``"relevant"`` or ``"not_relevant"``, ``None`` without a verdict phrase.

    The earliest phrase decides ("The passage is relevant, though it does not mention X" is relevant); graded wording
    such as "partially relevant" counts as relevant.

    Example:
        >>> stated_verdict("It does not mention prices, so it is not relevant."), stated_verdict("About cats.")
        ('not_relevant', None)
    """
    if not text or not text.strip():
        return None
    found = verdict_phrases(text)
    first_negation = min((start for start, _ in found.negations), default=None)
    first_affirmation = min((start for start, _ in found.affirmations), default=None)
    if first_negation is None and first_affirmation is None:
        return None
    if first_affirmation is None or (first_negation is not None and first_negation <= first_affirmation):
        return "not_relevant"
    return "relevant"


def graded_verdict(text: str) -> Verdict:
    """The three-way verdict of a reason that states no label (a teacher's direct reason).

    - ``not_relevant``: it denies relevance before affirming anything; or it only says what the passage does not
      mention/answer (not "does not *directly* answer"), with no contrast around it;
    - ``relevant``: it affirms (directly answers/states..., is relevant) and does not hedge;
    - ``partial``: everything else (on the topic, indirect, partly answering).

    Example:
        >>> graded_verdict("The passage does not mention the singer at all.")
        'not_relevant'
    """
    found = verdict_phrases(text)
    positive = found.affirmations[0][0] if found.affirmations else None
    if found.denials and (positive is None or found.denials[0][0] < positive):
        return "not_relevant"
    plain_lacks = [span for span in found.lacks if span not in found.direct_lacks]
    if plain_lacks and positive is None:
        start, end = plain_lacks[0]
        if not _CONTRAST.search(text, 0, start) and not re.search(r"\bbut\b", text[end:], re.IGNORECASE):
            return "not_relevant"
    if positive is not None and not found.hedged:
        return "relevant"
    return "partial"


def contradicts(reason: str, verdict: str | None) -> bool:
    """Whether ``reason`` says the opposite of ``verdict``.

    A reason contradicts its verdict when the graded verdict read from it (:func:`graded_verdict`) is the opposite
    one; a ``"relevant"`` reason also must not deny relevance or an answer anywhere ("..., which is not directly
    related", "it does not directly answer the query"); ``"partial"`` and ``None`` contradict nothing.

    Example:
        >>> contradicts("It directly answers the question.", "not_relevant")
        True
        >>> contradicts("It mentions fleas but does not answer the question.", "not_relevant")
        False
    """
    if verdict == "relevant":
        found = verdict_phrases(reason)
        return bool(found.denials or found.unanswered) or graded_verdict(reason) == "not_relevant"
    if verdict == "not_relevant":
        return graded_verdict(reason) == "relevant"
    return False


# ----------------------------------------------------------------------------------------------------------------
# Words
# ----------------------------------------------------------------------------------------------------------------

#: A small English stop-word list for explanations: function words that carry no claim about the passage.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the and or but nor so yet if then than that this these those there here it its it's they them their
    theirs he him his she her hers we us our you your i me my mine of in on at by for from to into onto over under
    with without about above below between through during before after up down out off again further once as
    is are was were be been being am do does did doing done have has had having can could will would shall should
    may might must not no yes don't doesn't didn't isn't aren't wasn't weren't can't cannot won't what which who
    whom whose when where why how all any both each few more most other some such only own same very too just also
    s t because while however therefore thus whether either neither one ones e g ie eg etc
    """.split()
)
#: The calibrator's stop words for queries (question words, "define"): frozen, the shipped weights depend on it.
QUERY_STOP_WORDS: frozenset[str] = frozenset("""
    a an the of to in is are was were be been for on with as by it its that this these those from at or and what which
    who whom whose how why when where does do did can could should would will shall may might much many there their
    they them you your i me my we our us he she his her not no define definition meaning mean means
""".split())

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_ASCII_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_WORD_PART = re.compile(r"[^\W_]+")


def tokenize(text: str, *, ascii_only: bool = True, split_apostrophes: bool = False) -> list[str]:
    """Lowercased word tokens of ``text``, an inner apostrophe kept and written ``'`` (``doesn't``).

    Args:
        text: Any text.
        ascii_only: Runs of ASCII letters and digits only (the text measures' reproducible definition); ``False``
            keeps any letter or digit (``zürich``).
        split_apostrophes: Split at apostrophes too (``doesn``, ``t``); implies any letter.

    Example:
        >>> tokenize("Fleas live 2-3 months; it doesn't say.")
        ['fleas', 'live', '2', '3', 'months', 'it', "doesn't", 'say']
        >>> tokenize("Zürich isn't", split_apostrophes=True)
        ['zürich', 'isn', 't']
    """
    lowered = text.lower()
    if split_apostrophes:
        return _WORD_PART.findall(lowered)
    return [t.replace("’", "'") for t in (_ASCII_WORD if ascii_only else _WORD).findall(lowered)]


def fold_plural(word: str) -> str:
    """``word`` without a plural ``s`` (not ``ss``; words of four letters or more), so "fleas" matches "flea"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def stem(word: str) -> str:
    """``word`` without an ``ing``, ``ed``, ``es`` or ``s`` ending (when at least four letters are left)."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str, *, stop_words: Collection[str] = STOP_WORDS, fold: Callable[[str], str] = fold_plural,
                  split_apostrophes: bool = False) -> list[str]:
    """The tokens of ``text`` (:func:`tokenize`) that are not ``stop_words``, each passed through ``fold``.

    The defaults are the text measures'; the calibrator's are ``stop_words=QUERY_STOP_WORDS, fold=stem,
    split_apostrophes=True``.

    Example:
        >>> content_words("The fleas live for two months")
        ['flea', 'live', 'two', 'month']
        >>> sorted(set(content_words("How long do fleas live?", stop_words=QUERY_STOP_WORDS, fold=stem,
        ...                          split_apostrophes=True)))
        ['flea', 'live', 'long']
    """
    return [fold(t) for t in tokenize(text, split_apostrophes=split_apostrophes) if t not in stop_words]


__all__ = ["QUERY_STOP_WORDS", "STOP_WORDS", "VERDICTS", "VERDICT_LABELS", "VERDICT_STRENGTH", "Verdict",
           "VerdictPhrases", "content_words", "contradicts", "fold_plural", "graded_verdict", "stated_verdict",
           "stem", "tokenize", "verdict_from_label", "verdict_phrases"]
