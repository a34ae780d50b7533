"""Shared fixtures: tiny random models built in-process (no download), and a network guard."""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import gc
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# A test run started in the background by a non-interactive shell (`make test &`, some CI runners) inherits SIGINT
# ignored, and Python then never raises KeyboardInterrupt, in this process or in the r2r processes the tests start:
# the Ctrl-C tests would fail without testing anything. Restore Python's own handler, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WORDS = (
    "the a an of to in is are was for on with as by it that this from at or be which how what why when long "
    "do does fleas flea live lives life cycle days weeks months year adult egg larva pupa host cat dog pet "
    "season seasons earth sun tilt axis orbit summer winter light heat cost price floor concrete query passage "
    "relevant not yes no answer because gives says about question order first later one two three it's"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_causal_lm(seed: int = 0):
    """A 2-layer random Llama with a byte-level BPE tokenizer trained in-process on a few words."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator([" ".join(WORDS)] * 20 + [w.capitalize() for w in WORDS], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def build_tiny_encoder(tmp: Path, seed: int = 0):
    """A 2-layer random BERT encoder with a WordPiece vocabulary written to ``tmp``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *"abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # from_pretrained reads vocab.txt; the constructor's vocab_file is ignored by recent transformers (all [UNK])
    tokenizer = BertTokenizerFast.from_pretrained(str(tmp))
    assert tokenizer.convert_tokens_to_ids("[UNK]") != tokenizer("a")["input_ids"][1], "tiny vocabulary not loaded"
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=512)
    return BertModel(config).eval(), tokenizer


@pytest.fixture(scope="session")
def _tiny_lm():
    return build_tiny_causal_lm()


@pytest.fixture
def tiny_lm(_tiny_lm):
    """A fresh copy of the tiny causal LM and its tokenizer for each test."""
    model, tokenizer = _tiny_lm
    return copy.deepcopy(model), tokenizer


@pytest.fixture(scope="session")
def _tiny_encoder(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder-vocab"))


@pytest.fixture
def tiny_encoder(_tiny_encoder):
    model, tokenizer = _tiny_encoder
    return copy.deepcopy(model), tokenizer


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, _tiny_lm):
    """The tiny causal LM saved to a folder, for ``from_pretrained`` paths."""
    model, tokenizer = _tiny_lm
    folder = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_student(tiny_lm, tiny_encoder):
    """A student with the tiny encoder scorer, tiny LM explainer and tiny LM re-scorer."""
    from r2r_agent import EncoderScorer, Explainer, LMScorer, Student

    model, tokenizer = tiny_lm
    encoder, encoder_tokenizer = tiny_encoder
    return Student(scorer=EncoderScorer(encoder, encoder_tokenizer, name="tiny-encoder", max_tokens=64),
                   explainer=Explainer(model, tokenizer, name="tiny-lm", max_new_tokens=8, max_passage_tokens=48),
                   rescorer=LMScorer(model, tokenizer, name="tiny-lm", max_passage_tokens=48),
                   name="tiny-student")


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection (loopback included)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")


@pytest.fixture(scope="session")
def dl19_candidates() -> Path:
    """``trec-dl/dl19.bm25.top100.jsonl.gz`` from ``../shared/data`` (or ``$R2R_DATA_DIR``); skips when absent."""
    env = os.environ.get("R2R_DATA_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    path = root / "trec-dl" / "dl19.bm25.top100.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"shared TREC DL data not present ({path})")
    return path


# -- the suite's footprint ------------------------------------------------------------------------------------------


def _trim_heap() -> None:
    """Give freed memory back to the system: collect cycles (models held in reference cycles), then ask glibc to
    return its free arenas (``malloc_trim``). Without it a process that once held a model keeps that resident size
    for the rest of the run, and every later peak starts from there."""
    gc.collect()
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        if name:
            try:
                ctypes.CDLL(name).malloc_trim(0)
            except (OSError, AttributeError):  # not glibc (musl): nothing to trim
                pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test of each module, once its module-scoped fixtures (models) are torn down."""
    result = yield
    if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
        _trim_heap()
    return result
