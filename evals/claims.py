"""What an explanation claims that can be checked by reading: numbers and quoted phrases, and whether it quotes its
evidence. Written for the evaluation on purpose apart from the core's grounding guard (:mod:`r2r_agent.grounding`),
so that the guard is measured by a check it does not share.

:func:`unsupported_claims`: every number (a run of digits, possibly with ``.`` or ``,`` inside: "2.5", "1,200") and
every phrase in double quotes (straight or curly) of an explanation must occur in the passage or the query. Both
sides are normalised first (:func:`normalise`): lower case, number words one to twenty written as digits,
thousands separators dropped; numbers are compared by value ("2.50" is "2.5"), quoted phrases by their words, in
order ("..." and punctuation ignored). Citations such as "[2]" claim nothing.

:func:`quotes_evidence`: the explanation holds a quoted phrase of at least :data:`MIN_QUOTED_WORDS` words (fewer when
the evidence is shorter) taken word for word from the evidence, or the whole evidence unquoted.

Example:
    >>> unsupported_claims('Fleas live 2 to 3 months; it says "adults live a year".', "Adult fleas live two to three "
    ...                    "months.", "how long do fleas live")
    ('"adults live a year"',)
    >>> quotes_evidence('Relevant: the passage says "Adult fleas live two to three..."', "Adult fleas live two to "
    ...                 "three months.")
    True
"""

from __future__ import annotations

import re

#: Number words written as digits before comparing (the ones a small LM writes either way).
NUMBER_WORDS = {word: str(value) for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split()) if value > 0}
#: The fewest words of a quoted phrase that count as quoting the evidence.
MIN_QUOTED_WORDS = 4
_NUMBER_WORD = re.compile(rf"\b(?:{'|'.join(NUMBER_WORDS)})\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”")
_CITATION = re.compile(r"\[\d+\]")
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
    """Lower case, number words one to twenty as digits, thousands separators dropped.

    Example:
        >>> normalise("Twelve of 1,200 Fleas")
        '12 of 1200 fleas'
    """
    return _THOUSANDS.sub("", _NUMBER_WORD.sub(lambda m: NUMBER_WORDS[m.group(0)], text.lower()))


def _numbers(text: str) -> list[tuple[str, float | None]]:
    """Each number of (normalised) ``text`` with its value (``None`` when it is not one number, e.g. "1.2.3")."""
    found = []
    for match in _NUMBER.finditer(text):
        written = match.group(0)
        try:
            value: float | None = float(written.replace(",", ""))
        except ValueError:
            value = None
        found.append((written, value))
    return found


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _contains(words: list[str], phrase: list[str]) -> bool:
    """Whether ``phrase`` occurs in ``words`` as a contiguous run."""
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def unsupported_claims(explanation: str, passage: str, query: str = "") -> tuple[str, ...]:
    """The numbers and quoted phrases of ``explanation`` that neither ``passage`` nor ``query`` states (each once, in
    order; quoted phrases in their quotes)."""
    source = normalise(f"{passage}\n{query}")
    values = {value for _, value in _numbers(source) if value is not None}
    written = {text for text, _ in _numbers(source)}
    source_words = _words(source)
    text = normalise(_CITATION.sub(" ", explanation))
    claims: list[str] = []
    for number, value in _numbers(text):
        if (value is None or value not in values) and number not in written:
            claims.append(number)
    for match in _QUOTED.finditer(text):
        phrase = match.group(1) or match.group(2)
        words = _words(phrase)
        if words and not _contains(source_words, words):
            claims.append(f'"{phrase.strip()}"')
    return tuple(dict.fromkeys(claims))


def quotes_evidence(explanation: str | None, evidence: str | None) -> bool:
    """Whether ``explanation`` quotes ``evidence`` (see the module docs); ``False`` when either is missing."""
    if not explanation or not evidence:
        return False
    wanted = _words(normalise(evidence))
    if not wanted:
        return False
    text = normalise(explanation)
    if _contains(_words(text), wanted):
        return True
    least = min(MIN_QUOTED_WORDS, len(wanted))
    for match in _QUOTED.finditer(text):
        words = _words(match.group(1) or match.group(2))
        if len(words) >= least and _contains(wanted, words):
            return True
    return False


__all__ = ["MIN_QUOTED_WORDS", "NUMBER_WORDS", "normalise", "quotes_evidence", "unsupported_claims"]
