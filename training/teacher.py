"""The teacher protocol and the typed answer a teacher gives for one window of passages.

A teacher is anything with a ``name`` and a ``complete(messages) -> str`` chat call: an OpenAI-compatible endpoint
(:class:`~r2r_agent.training.http_teacher.OpenAIChatTeacher`), a local ``transformers`` model
(:class:`~r2r_agent.training.local_teacher.TransformersTeacher`), a LangChain chat model, a LlamaIndex LLM or a
scripted fake. The window annotator (:func:`r2r_agent.training.annotate.annotate_window`) sends it the core prompt
:func:`r2r_agent.prompts.teacher_listwise_messages` and parses the reply with
:func:`r2r_agent.training.parsing.parse_teacher_answer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Teacher(Protocol):
    """A chat model that answers the teacher prompt.

    Attributes:
        name: Identifies the teacher (model and settings that change its answers); part of the annotation cache key,
            so two teachers that may answer differently must have different names.
    """

    name: str

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Return the assistant's reply text to chat ``messages`` (a list of ``{"role", "content"}`` dicts).

        Raises:
            TeacherError: when no answer could be obtained (after the backend's own retries).
        """
        ...


@dataclass(frozen=True)
class TeacherAnswer:
    """A teacher's ranking and reasons for one window of ``n`` passages.

    All indices are **0-based** positions in the window as it was shown to the teacher (the prompt numbers passages
    from 1; the parser converts). Per-passage lists are in window order, not in ranked order.

    Attributes:
        ranking: A permutation of ``range(n)``, best first.
        direct_reasons: For each window passage, the teacher's direct reason (why it is or is not relevant), or
            ``None`` when the teacher gave none.
        comparison_reasons: For each window passage, why it is above or below the others, or ``None``.
        comparison: The teacher's overall comparison of the top passages, or ``None``.
        repairs: What the parser had to fix to accept the answer (empty when the answer was clean).
        verdicts: For each window passage, the teacher's verdict (``"relevant"``, ``"partial"``,
            ``"not_relevant"``) or ``None``; empty when the answer has none at all.
        evidence: For each window passage, the sentence the teacher says best answers the query, or ``None``;
            empty when the answer has none at all.

    Example:
        >>> answer = TeacherAnswer(ranking=(1, 0), direct_reasons=("off topic", "gives the lifespan"),
        ...                        comparison_reasons=(None, None))
        >>> answer.ranked_direct_reasons()
        ('gives the lifespan', 'off topic')
    """

    ranking: tuple[int, ...]
    direct_reasons: tuple[str | None, ...]
    comparison_reasons: tuple[str | None, ...]
    comparison: str | None = None
    repairs: tuple[str, ...] = ()
    verdicts: tuple[str | None, ...] = ()
    evidence: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        for name in ("ranking", "direct_reasons", "comparison_reasons", "repairs", "verdicts", "evidence"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.ranking)
        if sorted(self.ranking) != list(range(n)):
            raise ValueError(f"TeacherAnswer.ranking must be a permutation of 0..{n - 1} (0-based), got {self.ranking}")
        for name in ("direct_reasons", "comparison_reasons", "verdicts", "evidence"):
            if name in ("verdicts", "evidence") and not getattr(self, name):
                continue
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"TeacherAnswer.{name} must have one entry per passage ({n}), got {len(getattr(self, name))}"
                )

    def __len__(self) -> int:
        return len(self.ranking)

    def ranked_direct_reasons(self) -> tuple[str | None, ...]:
        """The direct reasons in ranked order (best first)."""
        return tuple(self.direct_reasons[i] for i in self.ranking)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (indices stay 0-based)."""
        return {
            "ranking": list(self.ranking),
            "direct_reasons": list(self.direct_reasons),
            "comparison_reasons": list(self.comparison_reasons),
            "comparison": self.comparison,
            "repairs": list(self.repairs),
            "verdicts": list(self.verdicts),
            "evidence": list(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TeacherAnswer:
        """Build from :meth:`to_dict` output."""
        return cls(
            ranking=tuple(int(i) for i in data["ranking"]),
            direct_reasons=tuple(data["direct_reasons"]),
            comparison_reasons=tuple(data["comparison_reasons"]),
            comparison=data.get("comparison"),
            repairs=tuple(data.get("repairs", ())),
            verdicts=tuple(data.get("verdicts", ())),
            evidence=tuple(data.get("evidence", ())),
        )

    @classmethod
    def empty(cls) -> TeacherAnswer:
        """The answer for an empty window (nothing to rank)."""
        return cls(ranking=(), direct_reasons=(), comparison_reasons=())


@dataclass
class ScriptedTeacher:
    """A fake teacher for tests: replies from a script, or from a function of the messages.

    Args:
        replies: Each call takes the next item: a string is returned, an exception is raised. When the script is
            used up, ``default`` answers (or, without it, a :class:`~r2r_agent.training.TeacherError` is raised).
        default: A function ``messages -> str`` that answers every call after the script is used up.
        name: The teacher's name (its cache key).

    Attributes:
        calls: The messages of every call, in order (for assertions).

    Example:
        >>> teacher = ScriptedTeacher(['{"ranking": [2, 1], "reasons": [], "comparison": "x"}'])
        >>> teacher.complete([{"role": "user", "content": "..."}])[:12]
        '{"ranking": '
    """

    replies: Sequence[str | BaseException] = ()
    default: Any = None
    name: str = "scripted"
    calls: list[list[dict[str, str]]] = field(default_factory=list)

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Answer with the next scripted reply (see the class docstring)."""
        from .errors import TeacherError

        index = len(self.calls)
        self.calls.append([dict(m) for m in messages])
        if index < len(self.replies):
            reply = self.replies[index]
            if isinstance(reply, BaseException):
                raise reply
            return reply
        if self.default is not None:
            return self.default(messages)
        raise TeacherError(f"ScriptedTeacher {self.name!r}: script of {len(self.replies)} replies used up at call "
                           f"{index + 1}; pass more replies or a default function")


__all__ = ["ScriptedTeacher", "Teacher", "TeacherAnswer"]
