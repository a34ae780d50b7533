"""A real OpenAI-compatible HTTP server for tests, backed by an in-process causal LM (the tiny test models).

``POST /v1/chat/completions`` and ``POST /v1/completions`` with ``logprobs``/``top_logprobs``, ``GET /v1/models``,
on 127.0.0.1 (a free port) in threads. The numbers are the model's: the log-probabilities of the next token after the
prompt rendered with the tokenizer's chat template (``prompts.render``), and greedy generation for the content, as
the in-process ``LMScorer`` and ``Explainer`` compute them. Like vLLM, it batches: requests for one token waiting
together go through one forward pass (left-padded, as ``LMScorer`` pads). Longer generations run one at a time, so
they are bit-identical to ``Explainer(batch_size=1)``.

Faults for the client's tests are queued with :meth:`OpenAITestServer.fail_next`; :meth:`OpenAITestServer.close`
takes the server away (open connections included).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from r2r_agent import prompts
from r2r_agent.modeling import left_pad, left_padding_positions


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a client opening dozens of connections at once must not find the backlog full


@dataclass
class Fault:
    """What the server does instead of answering one request.

    kinds: ``"status"`` (HTTP ``status`` with ``headers``), ``"hang"`` (answer after ``seconds``), ``"malformed"``
    (a 200 with half a JSON body), ``"drop"`` (close the connection, no answer), ``"no_logprobs"`` (a correct
    answer without logprobs).
    """

    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    body: str = '{"error": {"message": "injected failure"}}'


@dataclass
class _Job:
    prompt: str
    max_tokens: int
    top_logprobs: int
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: str | None = None


class OpenAITestServer:
    """Serve ``model``/``tokenizer`` over the OpenAI protocol (see the module docs).

    Args:
        model: A causal LM (eval mode). Only the server's worker thread runs it.
        tokenizer: Its tokenizer (with a chat template).
        model_name: The served model name (others get a 404, like vLLM).
        max_batch: Most one-token requests run in one forward pass.
        max_top_logprobs: Most alternatives returned (``None``: the whole vocabulary; vLLM's default is 20).
        spell: Applied to every token text in logprobs (``str.upper`` imitates a server spelling tokens its way).
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get a 401 that echoes the header.

    Attributes:
        requests: ``(path, headers, body)`` of every request received.
        batches: The size of every forward pass run for one-token requests.
        peak_in_flight: The most requests the server held at once.
        gate: When set, each request waits (at most ``gate_seconds``) until this many are in flight: a client that
            sends that many at once passes at once, one that does not waits (and ``peak_in_flight`` says so).
    """

    def __init__(self, model: Any, tokenizer: Any, *, model_name: str = "tiny", max_batch: int = 16,
                 max_top_logprobs: int | None = None, spell: Callable[[str], str] | None = None,
                 api_key: str | None = None) -> None:
        self.model, self.tokenizer, self.model_name = model, tokenizer, model_name
        self.max_batch, self.max_top_logprobs, self.spell, self.api_key = max_batch, max_top_logprobs, spell, api_key
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self._texts: list[str] | None = None
        self.batches: list[int] = []
        self.peak_in_flight = 0
        self.gate: int | None = None
        self.gate_seconds = 3.0
        self._in_flight = 0
        self._changed = threading.Condition(threading.Lock())
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._connections: set[socket.socket] = set()
        self._server = _HTTPServer(("127.0.0.1", 0), self._handler())
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True, name="openai-test-http"),
                         threading.Thread(target=self._work, daemon=True, name="openai-test-model")]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(self, *faults: Fault) -> None:
        """The next requests get these faults, one each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def __enter__(self) -> OpenAITestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop answering: the port closes, open connections are cut, requests waiting get no answer."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._jobs.put(None)
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- the model ---------------------------------------------------------------------------------------------

    def _work(self) -> None:
        pending: deque[_Job] = deque()
        while not self._stop.is_set():
            job = pending.popleft() if pending else self._jobs.get()
            if job is None:
                break
            batch = [job]
            try:
                if job.max_tokens == 1:
                    while len(batch) < self.max_batch:
                        try:
                            other = self._jobs.get_nowait()
                        except queue.Empty:
                            break
                        if other is None:
                            self._stop.set()
                            break
                        (batch if other.max_tokens == 1 else pending).append(other)
                    self._next_token(batch)
                else:
                    self._generate(job)
            except Exception as exc:  # noqa: BLE001 - reported to the requests as a 500
                for failed in batch:
                    failed.error = f"{type(exc).__name__}: {exc}"
                    failed.done.set()
        for job in pending:
            job.done.set()

    def _token(self, token_id: int) -> str:
        if self._texts is None:  # decoded once: a top_logprobs list names up to the whole vocabulary per request
            texts = [self.tokenizer.decode([i], skip_special_tokens=False) for i in range(len(self.tokenizer))]
            self._texts = [self.spell(t) for t in texts] if self.spell else texts
        return self._texts[token_id]

    def _alternatives(self, logprobs: Any, k: int) -> list[tuple[str, float]]:
        import torch

        k = min(k, logprobs.shape[-1])
        values, ids = torch.topk(logprobs, k) if k else (logprobs[:0], logprobs[:0].long())
        return [(self._token(int(i)), float(v)) for v, i in zip(values.tolist(), ids.tolist())]

    def _next_token(self, batch: list[_Job]) -> None:
        import torch

        self.batches.append(len(batch))
        tokenizer = self.tokenizer
        encoded = [tokenizer(job.prompt, add_special_tokens=False)["input_ids"] for job in batch]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids, mask = left_pad(encoded, pad)
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=left_padding_positions(mask),
                             logits_to_keep=1)
            logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        for row, (job, prompt_ids) in enumerate(zip(batch, encoded)):
            chosen = int(logprobs[row].argmax())
            eos = chosen == tokenizer.eos_token_id
            job.result = {"tokens": [] if eos else [chosen], "steps": [(chosen, logprobs[row])],
                          "prompt_tokens": len(prompt_ids), "finish": "stop" if eos else "length"}
            job.done.set()

    def _generate(self, job: _Job) -> None:
        import torch
        from transformers import GenerationConfig

        tokenizer = self.tokenizer
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        prompt_ids = tokenizer(job.prompt, add_special_tokens=False)["input_ids"]
        ids, mask = left_pad([prompt_ids], pad)
        config = GenerationConfig(max_new_tokens=job.max_tokens, do_sample=False, pad_token_id=pad, eos_token_id=eos,
                                  output_scores=True, return_dict_in_generate=True)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        new = out.sequences[0, ids.shape[1]:].tolist()
        steps = [(token, torch.log_softmax(score[0].float(), dim=-1)) for token, score in zip(new, out.scores)]
        tokens = new[: new.index(eos)] if eos in new else new
        job.result = {"tokens": tokens, "steps": steps, "prompt_tokens": len(prompt_ids),
                      "finish": "stop" if eos in new else "length"}
        job.done.set()

    # -- the protocol ------------------------------------------------------------------------------------------

    def _answer(self, path: str, body: dict[str, Any], job: _Job, logprobs: bool) -> dict[str, Any]:
        assert job.result is not None
        result = job.result
        text = self.tokenizer.decode(result["tokens"], skip_special_tokens=True)
        steps = result["steps"][: max(1, len(result["tokens"]))]
        usage = {"prompt_tokens": result["prompt_tokens"], "completion_tokens": len(result["tokens"]),
                 "total_tokens": result["prompt_tokens"] + len(result["tokens"])}
        choice: dict[str, Any] = {"index": 0, "finish_reason": result["finish"], "logprobs": None}
        if path.endswith("chat/completions"):
            choice["message"] = {"role": "assistant", "content": text}
            if logprobs:
                content = []
                for token_id, values in steps:
                    token = self._token(token_id)
                    top = self._alternatives(values, job.top_logprobs)
                    content.append({"token": token, "logprob": float(values[token_id]), "bytes": list(token.encode()),
                                    "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                                                     for t, v in top]})
                choice["logprobs"] = {"content": content}
        else:
            choice["text"] = text
            if logprobs:
                tokens = [self._token(token_id) for token_id, _ in steps]
                choice["logprobs"] = {"tokens": tokens,
                                      "token_logprobs": [float(values[t]) for t, values in steps],
                                      "top_logprobs": [dict(self._alternatives(values, job.top_logprobs))
                                                       for _, values in steps],
                                      "text_offset": [0] * len(tokens)}
        kind = "chat.completion" if path.endswith("chat/completions") else "text_completion"
        return {"id": f"r2r-test-{id(job)}", "object": kind, "created": int(time.time()),
                "model": body.get("model"), "choices": [choice], "usage": usage}

    def _request(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one request: ``(status, JSON answer)``."""
        if body.get("model") != self.model_name:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        if path.endswith("chat/completions"):
            messages = body.get("messages")
            if not isinstance(messages, list):
                return 400, {"error": {"message": "messages must be a list"}}
            prompt = prompts.render(self.tokenizer, messages)
            logprobs = bool(body.get("logprobs"))
            top = int(body.get("top_logprobs") or 0)
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return 400, {"error": {"message": "prompt must be a string"}}
            logprobs = body.get("logprobs") is not None
            top = int(body.get("logprobs") or 0)
        if self.max_top_logprobs is not None and top > self.max_top_logprobs:
            return 400, {"error": {"message": f"top_logprobs {top} > max_logprobs {self.max_top_logprobs}"}}
        job = _Job(prompt, int(body.get("max_tokens") or 16), top)
        self._jobs.put(job)
        while not job.done.wait(0.05):
            if self._stop.is_set():
                raise ConnectionAbortedError("server closed")
        if job.error or job.result is None:
            return 500, {"error": {"message": job.error or "server closed"}}
        return 200, self._answer(path, body, job, logprobs)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server hook
                self._send(200, json.dumps({"object": "list", "data": [{"id": server.model_name,
                                                                         "object": "model"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook
                with server._changed:
                    server._in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server._in_flight)
                    server._changed.notify_all()
                    if server.gate is not None:
                        server._changed.wait_for(lambda: server._in_flight >= (server.gate or 0),
                                                 server.gate_seconds)
                try:
                    self._post()
                finally:
                    with server._changed:
                        server._in_flight -= 1

            def _post(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with server._lock:
                    server.requests.append((self.path, dict(self.headers), body))
                    fault = server._faults.popleft() if server._faults else None
                if server._stop.is_set() or (fault is not None and fault.kind == "drop"):
                    self.close_connection = True
                    return
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    # Like some proxies, echo what arrived: the client must redact it from its error.
                    self._send(401, json.dumps({"error": {"message": "invalid key: "
                                                          f"{self.headers.get('Authorization')}"}}).encode())
                    return
                if fault is not None and fault.kind == "status":
                    self._send(fault.status, fault.body.encode(), fault.headers)
                    return
                if fault is not None and fault.kind == "hang" and server._stop.wait(fault.seconds):
                    return
                try:
                    status, answer = server._request(self.path, body)
                except ConnectionAbortedError:
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "no_logprobs":
                    for choice in answer.get("choices", []):
                        choice.pop("logprobs", None)
                payload = json.dumps(answer).encode()
                if fault is not None and fault.kind == "malformed":
                    payload = payload[: len(payload) // 2]
                self._send(status, payload)

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client left (it timed out)
                    self.close_connection = True

        return Handler


def _root_conftest() -> Any:
    """tests/conftest.py, loaded by its path: ``import conftest`` gives whichever conftest pytest loaded last."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "r2r_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def build_answer_word_lm(seed: int = 0) -> tuple[Any, Any]:
    """The tiny random Llama of ``conftest.build_tiny_causal_lm``, with a tokenizer whose answer spellings are single
    tokens (``yes``, ``Yes``, `` yes``, `` Yes``; ``no``...), as in real chat models' vocabularies.

    The served scorer matches answer *words* in the tokens the server returns; the in-process scorer sums over the
    first token of each spelling. With one token per spelling both read exactly the same tokens, so their scores
    agree; ``YES`` stays several tokens, so the served scorer's case-insensitive match adds nothing here either.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = _root_conftest()
    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    answers = ["yes", "Yes", "no", "No"]
    words = root.WORDS
    raw.train_from_iterator([" ".join(words)] * 20 + [w.capitalize() for w in words] + [" ".join(answers)] * 30
                            + answers * 30, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>", unk_token="<unk>")
    tokenizer.chat_template = root.CHAT_TEMPLATE
    for spelling in ("yes", "Yes", " yes", " Yes", "no", "No", " no", " No"):
        assert len(tokenizer(spelling, add_special_tokens=False)["input_ids"]) == 1, spelling
    assert len(tokenizer("YES", add_special_tokens=False)["input_ids"]) > 1
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
    # Untied: a tiny random model with tied embeddings echoes the prompt's last token ("\n") forever.
    return LlamaForCausalLM(config).eval(), tokenizer


def main() -> None:
    """``python tests/openai_server.py [--seed N] [--max-batch N]``: serve the answer-word LM in its own process
    (benchmarks: the client then does not share the server's interpreter lock); prints the URL, then serves until
    its standard input closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=16)
    args = parser.parse_args()
    model, tokenizer = build_answer_word_lm(seed=args.seed)
    with OpenAITestServer(model, tokenizer, max_batch=args.max_batch) as server:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        sys.stdin.read()


if __name__ == "__main__":
    main()
