"""Teachers that wrap a LangChain chat model or a LlamaIndex LLM (imported lazily, only when used)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from r2r_agent._optional import require

from .errors import TeacherError


def _model_name(model: Any, fallback: str) -> str:
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    metadata = getattr(model, "metadata", None)
    value = getattr(metadata, "model_name", None)
    if isinstance(value, str) and value and value != "unknown":
        return value
    return fallback


def _text_of(content: Any) -> str:
    """Text from a message content: a string, or a list of strings / ``{"type": "text", "text": ...}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [c if isinstance(c, str) else c.get("text", "") for c in content if isinstance(c, (str, dict))]
        return "".join(parts)
    raise TeacherError(f"chat model returned content of type {type(content).__name__}, expected text")


def _framework(module: str, extra: str, owner: str, model: Any, name: str, prefix: str) -> tuple[Any, str]:
    """The framework's module (a missing extra names its ``pip install``) and the teacher's name (given, or
    ``prefix:`` and the model's name)."""
    return require(module, extra, owner), name or f"{prefix}:{_model_name(model, type(model).__name__)}"


@dataclass
class LangChainTeacher:
    """A teacher backed by any LangChain chat model (``BaseChatModel``), e.g. ``ChatOpenAI`` or ``ChatOllama``.

    Args:
        chat_model: The chat model; its ``invoke`` is called with LangChain messages.
        name: The teacher's name in the annotation cache (default: the model's ``model_name``/``model``).
    """

    chat_model: Any
    name: str = ""
    _messages: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._messages, self.name = _framework("langchain_core.messages", "langchain", "LangChainTeacher",
                                               self.chat_model, self.name, "langchain")

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Send ``messages`` through the chat model and return the reply text."""
        kinds = {"system": self._messages.SystemMessage, "user": self._messages.HumanMessage,
                 "assistant": self._messages.AIMessage}
        converted = [kinds[m["role"]](content=m["content"]) for m in messages]
        return _text_of(self.chat_model.invoke(converted).content)


@dataclass
class LlamaIndexTeacher:
    """A teacher backed by any LlamaIndex LLM (its ``chat`` method).

    Args:
        llm: The LlamaIndex LLM.
        name: The teacher's name in the annotation cache (default: the LLM's ``metadata.model_name``).
    """

    llm: Any
    name: str = ""
    _llms: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._llms, self.name = _framework("llama_index.core.llms", "llama-index", "LlamaIndexTeacher", self.llm,
                                           self.name, "llama-index")

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Send ``messages`` through the LLM's ``chat`` and return the reply text."""
        chat = [self._llms.ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        return _text_of(self.llm.chat(chat).message.content or "")


__all__ = ["LangChainTeacher", "LlamaIndexTeacher"]
