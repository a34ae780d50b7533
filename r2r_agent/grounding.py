"""The grounding guard: claims in an explanation that neither the query nor the passage supports.

A small LM paraphrases, and paraphrases can invent facts ("the cycle lasts 20 to 25 days" for a passage that says
"20 days to a year ... 20 to 25 eggs"). The guard checks the claims that can be checked by reading: numbers and
quantities (a number with its unit: "25 days", "$6"), dates (month names with a day or year), and quoted phrases.
A claim is supported when the query or the passage states it (numbers compared as numbers, units by their stem,
quotes by their words); otherwise it is *unsupported*. :func:`guard` drops every sentence holding an unsupported
claim, so what reaches a user or an answer LLM by default is never one.

Example:
    >>> passage = "The flea life cycle lasts from 20 days to an entire year. Females lay 20 to 25 eggs a day."
    >>> unsupported_claims("The cycle can last from 20 to 25 days.", passage, "how long do fleas live")
    ('20 to 25 days',)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
#: A number, an optional range to a second number ("20 to 25", "20-25", "20–25"), then an optional unit word or %.
_QUANTITY = re.compile(
    rf"(?P<currency>[$€£¥])?\s?(?<![\w.])(?P<first>{_NUMBER})"  # a number on its own, not the 1 of "q1" or "v1.2"
    rf"(?:\s*(?:-|–|—|to|and|or)\s*[$€£¥]?\s?(?P<second>{_NUMBER}))?"
    r"(?:\s*(?P<unit>%|percent\b|[a-zA-Z]{2,}\b))?")
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_DATE = re.compile(rf"\b(?P<month>{'|'.join(_MONTHS)})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,120})[\"“”]|(?<![A-Za-z])[‘']([^‘’']{3,120})[’'](?![A-Za-z])")
#: Words after a number that are not its unit ("20 of the 30", "5 they", "the 2 passages"): function words.
_NOT_UNITS = frozenset("""
    to and or of the a an in on at by for from with than that which who whom whose what when where why how is are was
    were be been being has have had do does did can could will would shall should may might must not no nor as so but
    if then than too very also just only about after before above below over under between into onto per each every
    more less most least it its they them their there here he him his she her we us our you your i me my this these
    those passage passages query queries st nd rd th
""".split())
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_CITATION = re.compile(r"\[\d+\]")


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _unit(word: str | None) -> str | None:
    if not word:
        return None
    word = word.lower()
    if word in ("%", "percent"):
        return "%"
    if word in _NOT_UNITS:
        return None
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


@dataclass(frozen=True)
class _Quantity:
    text: str
    numbers: tuple[float, ...]
    unit: str | None


def _quantities(text: str) -> list[_Quantity]:
    found = []
    for match in _QUANTITY.finditer(_digits(text)):
        numbers = tuple(_number(match.group(g)) for g in ("first", "second") if match.group(g))
        unit = "$" if match.group("currency") else _unit(match.group("unit"))
        last = "unit" if unit and match.group("unit") else ("second" if match.group("second") else "first")
        found.append(_Quantity(match.string[match.start() : match.end(last)].strip(), numbers, unit))
    return found


_NUMBER_WORDS = {word: str(value) for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                                                       "hundred": "100", "thousand": "1000", "dozen": "12"}
_NUMBER_WORD = re.compile(rf"\b({'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE)


def _digits(text: str) -> str:
    """``text`` with number words written as digits ("two days" -> "2 days"), so either spelling matches."""
    return _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1).lower()], text)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


class _Source:
    """What the query and passage state, indexed for the checks."""

    def __init__(self, texts: Iterable[str]) -> None:
        joined = "\n".join(texts)
        self.words = _words(joined)
        self.numbers: set[float] = set()
        self.quantities: set[tuple[float, str]] = set()
        for quantity in _quantities(joined):
            self.numbers.update(quantity.numbers)
            if quantity.unit:
                self.quantities.update((n, quantity.unit) for n in quantity.numbers)
        self.months = {m.group(1).lower()[:3] for m in re.finditer(rf"\b({'|'.join(_MONTHS)})\b", joined,
                                                                    re.IGNORECASE)}

    def supports_quantity(self, quantity: _Quantity) -> bool:
        """Every number is stated, and with a unit the last number is stated with that unit ("20 to 25 days" needs
        20, 25 and "25 days": "25 eggs" does not support it)."""
        if not all(n in self.numbers for n in quantity.numbers):
            return False
        return quantity.unit is None or (quantity.numbers[-1], quantity.unit) in self.quantities

    def supports_phrase(self, phrase: str) -> bool:
        words = _words(phrase)
        return not words or f" {words} " in f" {self.words} "


def unsupported_claims(explanation: str, passage: str, query: str = "") -> tuple[str, ...]:
    """The numbers, quantities, dates and quoted phrases of ``explanation`` that neither ``passage`` nor ``query``
    states, in the order they appear (each once)."""
    source = _Source([passage, query])
    explanation = _CITATION.sub(" ", explanation)  # "[2]" cites a passage; it claims nothing
    claims: list[str] = []
    for quantity in _quantities(explanation):
        if not source.supports_quantity(quantity):
            claims.append(quantity.text)
    for match in _DATE.finditer(explanation):
        if match.group("month").lower()[:3] not in source.months or float(match.group("day")) not in source.numbers:
            claims.append(match.group(0))
    for match in _QUOTED.finditer(explanation):
        phrase = match.group(1) or match.group(2)
        if not source.supports_phrase(phrase):
            claims.append(phrase)
    return tuple(dict.fromkeys(claims))


@dataclass(frozen=True)
class Guarded:
    """An explanation after the guard.

    Attributes:
        text: The explanation without the sentences that held an unsupported claim (``""`` when none is left).
        unsupported: The unsupported claims found in the original explanation.
    """

    text: str
    unsupported: tuple[str, ...]


def guard(explanation: str, passage: str, query: str = "") -> Guarded:
    """Drop each sentence of ``explanation`` that holds an unsupported claim (see :func:`unsupported_claims`).

    Example:
        >>> g = guard("It lists prices. It says the floor costs $9.", "Floors cost $2 to $6 per square foot.")
        >>> g.text, g.unsupported
        ('It lists prices.', ('$9',))
    """
    unsupported = unsupported_claims(explanation, passage, query)
    if not unsupported:
        return Guarded(explanation, ())
    kept = [s for s in _SENTENCE.split(explanation.strip()) if not unsupported_claims(s, passage, query)]
    return Guarded(" ".join(kept), unsupported)


__all__ = ["Guarded", "guard", "unsupported_claims"]
