"""Fixtures for the distillation tests: scripted teachers that answer the core teacher prompt."""

from __future__ import annotations

import json
import os
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def window_of(messages: list[dict[str, str]]) -> list[str]:
    """The passage texts a teacher prompt shows, in prompt order."""
    return [m.group(2) for m in _PASSAGE.finditer(messages[-1]["content"])]


def keyword_reply(messages: list[dict[str, str]]) -> str:
    """A well-formed teacher reply ranking passages by the number in their text ("score 7"), highest first."""
    texts = window_of(messages)
    def score(text: str) -> int:
        found = re.search(r"score (\d+)", text)
        return int(found.group(1)) if found else 0
    ranking = sorted(range(1, len(texts) + 1), key=lambda i: -score(texts[i - 1]))
    reasons = [{"passage": i, "direct": f"it says {texts[i - 1]}", "comparison": f"rank {r + 1} of {len(texts)}"}
               for r, i in enumerate(ranking)]
    return json.dumps({"ranking": ranking, "reasons": reasons, "comparison": "higher scores first"})


@pytest.fixture
def keyword_teacher():
    from r2r_agent.training import ScriptedTeacher

    return ScriptedTeacher(default=keyword_reply, name="keyword")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    """A 2-layer random BERT encoder and WordPiece tokenizer saved as a folder (what ``--base`` takes).

    Built here rather than with ``tests/conftest.py``'s ``build_tiny_encoder``: under transformers 5 its
    ``BertTokenizerFast(vocab_file=...)`` ignores the file and maps every word to ``[UNK]``, so its encoder sees only
    text lengths and cannot learn the teacher's order.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-encoder")
    words = sorted(set("how long do fleas live score days on a cat cats the sun".split()))
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words,
                                                 *"0123456789"]) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    assert "[UNK]" not in tokenizer.tokenize("how long do fleas live 3 score 9")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def train_interrupted_and_resumed(train, root):
    """Run ``train(folder, **kwargs)`` (4 steps, a checkpoint every 2) straight, and interrupted after step 3 then
    resumed from its step-2 checkpoint; returns ``(straight, resumed)``."""
    from r2r_agent.training.checkpoints import find_latest_checkpoint

    straight = train(root / "straight")

    def interrupt(step, record):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(root / "resumed", callback=interrupt)
    assert find_latest_checkpoint(root / "resumed").name == "checkpoint-0000002"
    resumed = train(root / "resumed", resume=True)
    assert resumed.resumed_from == 2 and resumed.steps == straight.steps == 4
    return straight, resumed


def assert_same_tensors(a, b):
    """Two state dicts hold the same names and bit-identical tensors."""
    import torch

    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
