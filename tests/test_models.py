"""Scorers and explainer on tiny in-process models."""

from __future__ import annotations

import math

import pytest
import torch

from r2r_agent import EncoderScorer, Explainer, LMScorer, Student
from r2r_agent.explainer import tidy
from r2r_agent.modeling import fit_tokens, quantize_int8

TEXTS = ["fleas live two months", "the sun and the earth", "cost of a concrete floor " * 3, "a", ""]


def test_fit_tokens_cuts_and_flags(tiny_lm):
    _, tokenizer = tiny_lm
    short, cut = fit_tokens(tokenizer, "fleas live", 50)
    assert (short, cut) == ("fleas live", False)
    long_text = "fleas live long " * 10_000
    shortened, cut = fit_tokens(tokenizer, long_text, 20)
    assert cut and len(tokenizer(shortened, add_special_tokens=False)["input_ids"]) <= 20
    assert long_text.startswith(shortened.strip())


def test_lm_scorer_batched_equals_one_by_one(tiny_lm):
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, batch_size=8)
    batched = scorer.score("how long do fleas live", TEXTS).values
    single = [scorer.score("how long do fleas live", [t]).values[0] for t in TEXTS]
    assert all(math.isfinite(v) for v in batched)
    assert batched == pytest.approx(single, abs=1e-4)


def test_lm_scorer_rank_head_is_used(tiny_lm):
    model, tokenizer = tiny_lm
    head = torch.nn.Linear(model.config.hidden_size, 1)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(0.25)
    scores = LMScorer(model, tokenizer, rank_head=head).score("q", ["a", "b"]).values
    assert scores == pytest.approx([0.25, 0.25])


def test_lm_scorer_flags_truncation(tiny_lm):
    model, tokenizer = tiny_lm
    scores = LMScorer(model, tokenizer, max_passage_tokens=16).score("q", ["short", "fleas " * 500])
    assert scores.truncated == [False, True]


def test_encoder_scorer_is_cosine_and_batch_invariant(tiny_encoder):
    model, tokenizer = tiny_encoder
    scorer = EncoderScorer(model, tokenizer, max_tokens=32, batch_size=2)
    scores = scorer.score("how long do fleas live", TEXTS)
    assert all(-1.0001 <= v <= 1.0001 for v in scores.values)
    single = [scorer.score("how long do fleas live", [t]).values[0] for t in TEXTS]
    assert scores.values == pytest.approx(single, abs=1e-5)
    assert scorer.score("q", ["fleas " * 200]).truncated == [False]  # read whole, in windows
    assert scorer.score("q", ["fleas " * 5000]).truncated == [True]  # past max_tokens_per_passage
    first_window = EncoderScorer(model, tokenizer, max_tokens=32, max_tokens_per_passage=None)
    assert first_window.score("q", ["fleas " * 200]).truncated == [True]
    assert scorer.score("q", []).values == []


def test_explainer_batched_matches_sequential(tiny_lm):
    model, tokenizer = tiny_lm
    explainer = Explainer(model, tokenizer, max_new_tokens=6, batch_size=8)
    batched = explainer.explain("how long do fleas live", TEXTS[:3])
    sequential = [explainer.explain("how long do fleas live", [t]).texts[0] for t in TEXTS[:3]]
    assert batched.texts == sequential
    assert batched.generated_tokens <= 6 * 3
    comparison = explainer.compare_grounded("how long do fleas live", TEXTS[:3], ["relevant", "partial", None])
    assert len(comparison.texts) == 1 and comparison.truncated == [False, False, False]
    assert comparison.generated_tokens <= 6 * 2


def test_explainer_rejects_bad_settings(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match="max_new_tokens"):
        Explainer(model, tokenizer, max_new_tokens=0)


def test_tidy_drops_unfinished_sentence():
    assert tidy("  It says fleas live 2 months.  It also ") == "It says fleas live 2 months."
    assert tidy("no sentence end here") == "no sentence end here"
    assert tidy("") == ""


def test_int8_quantization_keeps_scores_close(tiny_lm):
    model, tokenizer = tiny_lm
    reference = LMScorer(model, tokenizer).score("fleas", TEXTS[:3]).values
    quantized = LMScorer(quantize_int8(model), tokenizer).score("fleas", TEXTS[:3]).values
    assert all(math.isfinite(v) for v in quantized)
    assert quantized == pytest.approx(reference, abs=0.5)


def test_student_from_pretrained_with_and_without_adapter(tiny_lm_dir, tmp_path, no_network):
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    student = Student.from_pretrained(tiny_lm_dir)
    base_scores = student.scorer.score("q", ["fleas live"]).values
    assert student.adapter is None and isinstance(student.explainer, Explainer)

    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    adapted = Student.from_pretrained(tiny_lm_dir, adapter=adapter_dir)
    assert adapted.adapter == str(adapter_dir)
    assert adapted.scorer.score("q", ["fleas live"]).values != pytest.approx(base_scores)

    hidden = base.config.hidden_size
    save_file({"weight": torch.zeros(1, hidden), "bias": torch.tensor([1.5])}, adapter_dir / "rank_head.safetensors")
    with_head = Student.from_pretrained(tiny_lm_dir, adapter=adapter_dir)
    assert with_head.scorer.score("q", ["fleas live"]).values == pytest.approx([1.5])


def test_from_pretrained_bad_folder_is_a_clear_error(tmp_path):
    from r2r_agent import ModelPreparationError

    with pytest.raises(ModelPreparationError, match="could not load"):
        Student.from_pretrained(tmp_path / "missing")


def test_adapter_folder_without_config_is_a_clear_error(tiny_lm_dir, tmp_path):
    from r2r_agent import AdapterError, ModelPreparationError

    (tmp_path / "notadapter").mkdir()
    # an AdapterError (still a ModelPreparationError) names what is missing and what to pass instead
    with pytest.raises(AdapterError, match="notadapter'?: no adapter_config.json; pass a folder written by") as error:
        Student.from_pretrained(tiny_lm_dir, adapter=tmp_path / "notadapter")
    assert isinstance(error.value, ModelPreparationError)


def test_shared_prompt_prefix_runs_once_and_changes_nothing(tiny_lm, monkeypatch):
    """Issue 20 item 4: the prompts' common prefix (system prompt + query) is prefilled once for the batch; every
    row still writes exactly what it writes alone (mid-sequence padding is masked, positions follow the mask)."""
    import functools

    from r2r_agent import explainer as explainer_module

    model, tokenizer = tiny_lm
    explainer = Explainer(model, tokenizer, max_new_tokens=8, batch_size=8)
    passages = ["fleas live two months", "a", "the sun is a star that warms the earth every day"]
    calls: list[int] = []
    real_forward = model.forward

    @functools.wraps(real_forward)  # keeps its signature (the explainer reads which cache keyword it takes)
    def counting_forward(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append(int(ids.shape[0] * ids.shape[1]) if ids is not None else 0)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    shared = explainer.explain("how long do fleas live", passages, verdicts=["relevant", None, "not_relevant"])
    prefilled_shared = calls[0] + calls[1]
    calls.clear()
    monkeypatch.setattr(explainer_module, "MIN_SHARED_PREFIX_TOKENS", 10**9)
    unshared = explainer.explain("how long do fleas live", passages, verdicts=["relevant", None, "not_relevant"])
    alone = [explainer.explain("how long do fleas live", [p], verdicts=[v]).texts[0]
             for p, v in zip(passages, ["relevant", None, "not_relevant"])]
    assert shared.texts == unshared.texts == alone
    assert shared.generated_tokens == unshared.generated_tokens
    assert prefilled_shared < calls[0]  # fewer prompt tokens went through the model


def test_generation_stops_at_the_end_of_the_reason(tiny_lm):
    """A row stops once it has written its sentences (the token after the full stop shows it ended); what a stopped
    row is padded with afterwards is never read."""
    import torch

    from r2r_agent.explainer import _SentenceStop

    _, tokenizer = tiny_lm
    prompt = tokenizer("Query: fleas", add_special_tokens=False)["input_ids"]
    steps = [tokenizer(text, add_special_tokens=False)["input_ids"]
             for text in ("It lives two months. It also", "Version 2.5 is out. Then more", "no end")]
    width = max(len(s) for s in steps)
    stop = _SentenceStop(tokenizer, [1, 2, 1])
    done = None
    for n in range(1, width + 1):
        rows = [prompt + (s + [tokenizer.pad_token_id] * width)[:n] for s in steps]
        done = stop(torch.tensor(rows), None)
    assert done.tolist() == [True, False, False] and stop.lengths[1:] == [None, None]
    first = tokenizer.decode(steps[0][: stop.lengths[0]], skip_special_tokens=True)
    assert first.startswith("It lives two months.") and tidy(first) == "It lives two months."
    assert not _SentenceStop(tokenizer, [None, None]).active
