from __future__ import annotations

import json
import subprocess
import sys

import pytest

from r2r_agent.training import annotate_window


def test_importing_training_is_light():
    code = ("import sys, r2r_agent.training; "
            "print(sorted(m for m in ('torch', 'transformers', 'httpx', 'langchain_core', 'llama_index') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_langchain_chat_model_as_teacher():
    pytest.importorskip("langchain_core")
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from r2r_agent.training.framework_teachers import LangChainTeacher

    reply = json.dumps({"ranking": [2, 1], "reasons": [{"passage": 2, "direct": "names it"}], "comparison": "x"})
    teacher = LangChainTeacher(FakeListChatModel(responses=[reply]), name="fake-lc")
    window = annotate_window(teacher, "q", ["a", "b"])
    assert window.ok and window.answer.ranking == (1, 0) and window.teacher == "fake-lc"


def test_llama_index_llm_as_teacher():
    pytest.importorskip("llama_index.core")
    from llama_index.core.llms import ChatMessage, ChatResponse
    from llama_index.core.llms.mock import MockLLM

    from r2r_agent.training.framework_teachers import LlamaIndexTeacher

    reply = json.dumps({"ranking": [1, 2], "reasons": [{"passage": 1, "direct": "names it"}]})

    class ScriptedLLM(MockLLM):
        def chat(self, messages, **kwargs):
            return ChatResponse(message=ChatMessage(role="assistant", content=reply))

    window = annotate_window(LlamaIndexTeacher(ScriptedLLM()), "q", ["a", "b"])
    assert window.ok and window.answer.ranking == (0, 1)
