"""A local OpenAI-compatible chat-completions server with fault injection, for tests and benchmarks.

Run it standalone::

    python tests/fake_openai.py --port 0 --latency 0.05 [--seed 0]

It binds 127.0.0.1 only and prints exactly one line, ``PORT <n>``, on stdout once it listens, so a
parent process can read the port it was given. :class:`FakeOpenAIServer` does exactly that and
wraps the control endpoints; ``bench/`` scripts reuse it after putting the repository root on
``sys.path``: ``from tests.fake_openai import FakeOpenAIServer``.

Endpoints:

- ``POST /v1/chat/completions``: answers ``"echo: " + <last user message content, first 200
  characters>``, with honest usage (whitespace-separated words), as JSON or as an SSE stream
  (``stream: true``; ``stream_options.include_usage`` adds OpenAI's final usage chunk).
- Tool calls: when the request offers ``tools`` and the last user message reads ``call <name> <arguments>``, the reply
  calls that tool (``content: null``, one ``tool_calls`` entry with ``<arguments>`` as the arguments text, as given, valid
  JSON or not; ``finish_reason: tool_calls``), streamed as OpenAI streams calls (id and name first, arguments in two parts).
  ``say <text> then call <name> <arguments>`` gives the text and the call in one message.
- Judge mode: when a system message contains ``JUDGE_MARKER`` (the phrase llmops-bench's LLM judges
  open with), the answer is a verdict instead of an echo, see :func:`judge_verdict`. Its format
  follows the model name: ``{"score": N, "reason": ...}`` JSON by default, the same JSON in a
  ```` ```json ```` fence for ``fenced*``, ``Score: N`` / ``Reason: ...`` lines for ``lines*``, and
  prose with no verdict at all for ``nonsense*``. Faults and counters apply as to any chat request.
- ``POST /v1/embeddings``: deterministic unit-length hashed bag-of-words vectors (``EMBED_DIM``
  floats, or base64 float32 when ``encoding_format`` is ``"base64"``, as the openai SDK asks), usage
  counted in words. Faults only with ``embed_rate_500`` (500s drawn from an RNG of their own), and
  counted apart in ``/stats`` (``embeddings``, ``embedding_faults``), so the chat fault sequence is the
  same with or without embedding calls.
- ``POST /config``: fault injection, see :class:`FaultConfig`. Unknown keys or bad values are
  a 400 that names the known keys.
- ``GET /stats``: counters, see :meth:`FakeOpenAI.stats`.
- ``POST /reset``: clears counters and the seen-bodies set; an optional JSON body of
  :class:`FaultConfig` keys is applied as by ``/config``, the rest of the configuration is kept.

Each chat request takes one uniform draw from ``random.Random(seed)``; the RNG is re-seeded by
every ``/config`` and ``/reset``, so a test that configures then sends requests one at a time sees
the same faults on every run. Model-name prefixes force a fault regardless of the rates:
``always500*`` → 500, ``always429*`` → 429, ``slow*`` → a hang of ``hang_s``, ``malformed*`` → a malformed body (all four counted
in ``faults``). ``always401*`` → 401 whose message quotes the API key the client sent, in full (OpenAI quotes a masked part of it:
this is the worst case for secret scrubbing); it is not counted in ``faults``. ``leak-headers*`` → a normal answer that is the JSON of
every request header (``Authorization`` and any ``extra_headers`` included): a model that echoes its credentials into its output.
``leak-error*`` → 400 whose message quotes every request header: an error body holding them.
Limits: ``max_body`` (bytes, 0: aiohttp's own 1 MiB) answers a larger chat request with 413 in OpenAI's error format, before
reading it. ``fail_first`` answers the next N chat requests (after ``/config`` or ``/reset``) with 500, then behaves: one fault, then
success, for retry tests that must not depend on chance.

Speed matters more than features here: the server must not be the bottleneck of a benchmark at
~1000 requests/s, so nothing is logged per request (no access log, and never a header or a body:
clients send real API keys in ``Authorization``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import math
import os
import queue
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from aiohttp import web

HOST = "127.0.0.1"
FAULTS = ("429", "500", "hang", "malformed")
ANSWER_PREFIX = "echo: "
MAX_ECHO_CHARS = 200
STREAM_PIECES = 4  # content chunks per streamed answer: enough to exercise chunk joining and TTFT
# A 200 whose body stops mid-object: what a proxy that cut the connection short would deliver.
MALFORMED_BODY = '{"id": "x", "choices": ['
JUDGE_MARKER = "impartial judge"
NONSENSE_VERDICT = "What a lovely question. I would rather talk about the weather today."
EMBED_DIM = 64
_SCALE = re.compile(r"from (-?\d+) to (-?\d+)")


@dataclass(frozen=True)
class FaultConfig:
    """Runtime behaviour of the server; every field can be changed with ``POST /config``.

    The defaults are a well-behaved, instant server. The four rates are probabilities drawn
    per request and must sum to at most 1.
    """

    latency: float = 0.0  # seconds slept before every answer, faults included (a network round trip)
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    rate_malformed: float = 0.0
    hang_s: float = 30.0  # long enough that any sane client timeout fires first
    retry_after: float = 1.0  # seconds advertised by a 429
    embed_rate_500: float = 0.0  # share of embedding requests answered 500 (drawn from a second RNG: the chat faults stay as they were)
    seed: int = 0
    max_body: float = 0.0  # bytes; a larger chat request gets 413 (0: no limit of ours)
    fail_first: int = 0  # the next N chat requests get 500, then none (reset by every /config and /reset)

    def updated(self, changes: dict[str, Any]) -> FaultConfig:
        """A copy with `changes` applied; ValueError naming the problem if any is invalid."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        for key, value in changes.items():
            # bool is an int subclass: reject it, `"rate_500": true` is a mistake, not 1.0
            whole = key in ("seed", "fail_first")
            wanted = int if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise ValueError(f"{key} must be {'an integer' if whole else 'a number'}, got {value!r}")
            if key != "seed" and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
        new = replace(self, **changes)
        rates = [new.rate_429, new.rate_500, new.rate_hang, new.rate_malformed]
        if max(rates) > 1 or sum(rates) > 1:
            raise ValueError(f"fault rates must each be in [0, 1] and sum to at most 1, got {rates}")
        return new


def _text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a multi-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def judge_verdict(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The fake judge's verdict for a chat request, or None when no system message holds JUDGE_MARKER.

    The score is derived from the last user message alone (a blake2b digest modulo the scale's size), so
    a test can predict it; the scale is read from "from LO to HI" in the system message (default 0 to 1).
    """
    system = " ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    if JUDGE_MARKER not in system:
        return None
    scale = _SCALE.search(system)
    lo, hi = (int(scale.group(1)), int(scale.group(2))) if scale else (0, 1)
    user = _text(next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1]).get("content"))
    digest = int.from_bytes(hashlib.blake2b(user.encode(), digest_size=8).digest(), "big")
    return lo + digest % (hi - lo + 1), f"fake verdict on {len(user.split())} words"


def _verdict_text(model: str, score: int, reason: str) -> str:
    verdict = json.dumps({"score": score, "reason": reason})
    if model.startswith("nonsense"):
        return NONSENSE_VERDICT
    if model.startswith("fenced"):
        return f"Here is my verdict:\n```json\n{verdict}\n```"
    if model.startswith("lines"):
        return f"Score: {score}\nReason: {reason}"
    return verdict


def fake_embedding(text: str) -> list[float]:
    """A unit-length hashed bag-of-words vector of `text` (EMBED_DIM floats; zeros for a text with no words)."""
    vector = [0.0] * EMBED_DIM
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[h % EMBED_DIM] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def _error(status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None) -> web.Response:
    """A response in OpenAI's error format, so clients map it as they would the real API's."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _headers(request: web.Request) -> str:
    """Every header of `request` as JSON: what a careless server echoes (credentials included)."""
    return json.dumps(dict(request.headers), sort_keys=True)


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class FakeOpenAI:
    """The server's state and handlers. One event loop, so plain attributes need no locks."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.embed_rng = random.Random(config.seed)
        self.inflight = 0  # survives resets: requests in flight are still in flight
        self.fail_left = config.fail_first
        self._clear_counters()

    def _clear_counters(self) -> None:
        self.requests = 0
        self.completed = 0
        self.faults = dict.fromkeys(FAULTS, 0)
        self.max_inflight = self.inflight
        self.repeats = 0
        # time.time() of each chat request's arrival (the last 10,000): pacing is read from these
        self.arrivals: collections.deque[float] = collections.deque(maxlen=10_000)
        self.embeddings = 0
        self.embedding_faults = 0
        # digests, not bodies: bounded memory per request, and no request content kept around
        self.seen: set[bytes] = set()

    def _apply(self, changes: dict[str, Any]) -> None:
        self.config = self.config.updated(changes)
        self.rng.seed(self.config.seed)
        self.embed_rng.seed(self.config.seed)
        self.fail_left = self.config.fail_first

    def stats(self) -> dict[str, Any]:
        """``requests``: chat requests received (control endpoints excluded); ``completed``: normal
        answers sent; ``faults``: injected faults by kind; ``repeats``: requests whose model +
        messages had been seen before since the last reset; ``unique``: distinct such bodies;
        ``arrivals``: each chat request's arrival time (epoch seconds); ``embeddings``: embedding
        requests received, ``embedding_faults``: those answered 500."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "faults": dict(self.faults),
            "max_inflight": self.max_inflight,
            "inflight": self.inflight,
            "repeats": self.repeats,
            "unique": len(self.seen),
            "arrivals": list(self.arrivals),
            "embeddings": self.embeddings,
            "embedding_faults": self.embedding_faults,
        }

    # --- control endpoints -------------------------------------------------------------

    async def handle_config(self, request: web.Request) -> web.Response:
        try:
            self._apply(await self._control_body(request))
        except ValueError as exc:
            return _error(400, str(exc), "invalid_request_error", None)
        return web.json_response(asdict(self.config))

    async def handle_reset(self, request: web.Request) -> web.Response:
        try:
            self._apply(await self._control_body(request))
        except ValueError as exc:
            return _error(400, str(exc), "invalid_request_error", None)
        self._clear_counters()
        return web.json_response(asdict(self.config))

    async def handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    @staticmethod
    async def _control_body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body

    # --- chat completions --------------------------------------------------------------

    async def handle_chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.arrivals.append(time.time())
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._chat(request)
        finally:
            # also runs when aiohttp cancels the handler because the client went away
            self.inflight -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.config.max_body and (request.content_length or 0) > self.config.max_body:
            return _error(413, f"Request Entity Too Large: the body is {request.content_length} bytes, over this server's limit of "
                               f"{self.config.max_body:g} bytes.", "invalid_request_error", "request_too_large")
        try:
            body = await request.json()
            model, messages = self._validate(body)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return _error(400, f"Invalid request: {exc}", "invalid_request_error", None)

        self._remember(model, messages)
        # Always draw, whatever the model, so the fault sequence depends only on request order.
        fault = self._fault(model, self.rng.random())
        if self.fail_left > 0 and not fault:
            self.fail_left -= 1
            fault = "500"
        cfg = self.config  # a /config arriving while this request sleeps must not change it halfway
        if fault:
            self.faults[fault] += 1
        stream = body.get("stream") is True
        if cfg.latency:
            await asyncio.sleep(cfg.latency)

        if model.startswith("leak-error"):
            return _error(400, f"Bad request; the headers were {_headers(request)}", "invalid_request_error", None)
        if model.startswith("always401"):
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(401, f"Incorrect API key provided: {key}. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")
        if fault == "429":
            # Integer Retry-After as HTTP specifies (litellm parses it with int()), plus OpenAI's
            # retry-after-ms with the exact value, which the openai SDK prefers.
            headers = {"Retry-After": str(math.ceil(cfg.retry_after)), "retry-after-ms": str(round(cfg.retry_after * 1000))}
            return _error(429, f"Rate limit reached for {model}. Please try again in {cfg.retry_after:g}s.",
                          "requests", "rate_limit_exceeded", headers)
        if fault == "500":
            return _error(500, "The server had an error while processing your request. Sorry about that!",
                          "server_error", None)
        if fault == "malformed":
            if stream:
                return await self._malformed_stream(request)
            return web.Response(status=200, text=MALFORMED_BODY, content_type="application/json")
        if fault == "hang":
            await asyncio.sleep(cfg.hang_s)

        answer, usage = self._answer(model, messages)
        calls = self._tool_calls(body, messages)
        if calls is not None:
            answer, calls = calls
        if model.startswith("leak-headers"):
            answer = f"headers: {_headers(request)}"
            usage = {**usage, "completion_tokens": len(answer.split()), "total_tokens": usage["prompt_tokens"] + len(answer.split())}
        completion_id = f"chatcmpl-fake-{self.requests}"
        if stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            response = await self._stream(request, completion_id, model, answer, usage if include_usage else None, calls)
        else:
            message: dict[str, Any] = {"role": "assistant", "content": answer}
            if calls:
                message["tool_calls"] = calls
            response = web.json_response({
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": usage,
            })
        self.completed += 1
        return response

    @staticmethod
    def _validate(body: Any) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise ValueError("'model' must be a non-empty string")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ValueError("'messages' must be a non-empty list of objects")
        return model, messages

    def _remember(self, model: str, messages: list[dict[str, Any]]) -> None:
        # Canonical JSON of what determines the answer; stream flags and sampling options are
        # deliberately left out, so a streamed re-send of a cached call still counts as a repeat.
        canonical = json.dumps({"model": model, "messages": messages}, sort_keys=True, separators=(",", ":"))
        digest = hashlib.blake2b(canonical.encode(), digest_size=16).digest()
        if digest in self.seen:
            self.repeats += 1
        else:
            self.seen.add(digest)

    def _fault(self, model: str, draw: float) -> str | None:
        if model.startswith("always500"):
            return "500"
        if model.startswith("always429"):
            return "429"
        if model.startswith("slow"):
            return "hang"
        if model.startswith("malformed"):
            return "malformed"
        cfg = self.config
        threshold = 0.0
        for fault, rate in zip(FAULTS, (cfg.rate_429, cfg.rate_500, cfg.rate_hang, cfg.rate_malformed), strict=True):
            threshold += rate
            if draw < threshold:
                return fault
        return None

    @staticmethod
    def _tool_calls(body: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]] | None:
        """(text or None, tool calls) when the request offers tools and asks for a call, else None."""
        if not body.get("tools"):
            return None
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
        match = re.match(r"(?:say (.+?) then )?call (\S+) ?(.*)$", _text(last_user.get("content")).strip(), re.S)
        if not match:
            return None
        text, name, arguments = match.groups()
        return text, [{"id": f"call_{hashlib.sha1(arguments.encode()).hexdigest()[:8]}", "type": "function",
                       "function": {"name": name, "arguments": arguments}}]

    @staticmethod
    def _answer(model: str, messages: list[dict[str, Any]]) -> tuple[str, dict[str, int]]:
        verdict = judge_verdict(messages)
        if verdict is not None:
            answer = _verdict_text(model, *verdict)
        else:
            last_user = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
            answer = ANSWER_PREFIX + _text(last_user.get("content"))[:MAX_ECHO_CHARS]
        prompt_tokens = sum(len(_text(m.get("content")).split()) for m in messages)
        completion_tokens = len(answer.split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return answer, usage

    @staticmethod
    async def _start_sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        return response

    async def _stream(self, request: web.Request, completion_id: str, model: str, answer: str | None,
                      usage: dict[str, int] | None, calls: list[dict[str, Any]] | None = None) -> web.StreamResponse:
        """OpenAI's chunk sequence: role, content pieces, tool-call pieces, finish_reason, [usage], [DONE]."""
        words = (answer or "").split(" ") if answer else []
        size = math.ceil(len(words) / STREAM_PIECES) if words else 1
        pieces = [" ".join(words[i:i + size]) for i in range(0, len(words), size)]
        deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": "" if answer is not None else None}, None)]
        deltas += [({"content": piece if i == 0 else " " + piece}, None) for i, piece in enumerate(pieces)]
        for i, call in enumerate(calls or []):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            deltas.append(({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                            "function": {"name": call["function"]["name"], "arguments": ""}}]}, None))
            deltas += [({"tool_calls": [{"index": i, "function": {"arguments": part}}]}, None)
                       for part in (arguments[:half], arguments[half:]) if part]
        deltas.append(({}, "tool_calls" if calls else "stop"))

        base: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk",
                                "created": int(time.time()), "model": model}
        if usage is not None:
            base["usage"] = None  # OpenAI sends "usage": null on every chunk but the last when asked for usage
        response = await self._start_sse(request)
        for delta, finish_reason in deltas:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            await response.write(_sse({**base, "choices": [choice]}))
        if usage is not None:
            await response.write(_sse({**base, "choices": [], "usage": usage}))
        await response.write(_sse("[DONE]"))
        await response.write_eof()
        return response

    # --- embeddings ------------------------------------------------------------------------

    async def handle_embeddings(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
                raise ValueError("'model' must be a non-empty string")
            texts = [body.get("input")] if isinstance(body.get("input"), str) else body.get("input")
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise ValueError("'input' must be a string or a non-empty list of strings")
        except ValueError as exc:
            return _error(400, f"Invalid request: {exc}", "invalid_request_error", None)
        self.embeddings += 1
        if self.config.latency:
            await asyncio.sleep(self.config.latency)
        if self.embed_rng.random() < self.config.embed_rate_500:
            self.embedding_faults += 1
            return _error(500, "The server had an error while processing your request.", "server_error", None)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector = fake_embedding(text)
            encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _malformed_stream(self, request: web.Request) -> web.StreamResponse:
        response = await self._start_sse(request)
        await response.write(_sse(MALFORMED_BODY))
        await response.write(_sse("[DONE]"))
        await response.write_eof()
        return response


def make_app(config: FaultConfig) -> web.Application:
    server = FakeOpenAI(config)
    app = web.Application()
    app.add_routes([
        web.post("/v1/chat/completions", server.handle_chat),
        web.post("/v1/embeddings", server.handle_embeddings),
        web.post("/config", server.handle_config),
        web.post("/reset", server.handle_reset),
        web.get("/stats", server.handle_stats),
    ])
    return app


async def serve(port: int, config: FaultConfig, exit_with_stdin: bool) -> None:
    """Listen on 127.0.0.1:`port` (0 = any free port), print ``PORT <n>``, run until SIGINT/SIGTERM."""
    # handler_cancellation: a client that times out during a hang disconnects, and its handler is
    # cancelled instead of sleeping on, so `inflight` is honest and shutdown is not held up.
    runner = web.AppRunner(make_app(config), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    # A deep backlog, so a benchmark's burst of connections is queued rather than refused.
    await web.TCPSite(runner, HOST, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if exit_with_stdin:
        # The parent holds our stdin open; EOF means it is gone (even killed with -9), so we do
        # not linger as an orphan holding a port. os.read, not sys.stdin: a thread blocked inside
        # a buffered reader holds its lock and delays interpreter exit by a second.
        def wait_for_eof() -> None:
            while os.read(sys.stdin.fileno(), 4096):
                pass
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=wait_for_eof, daemon=True).start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before every answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault-injection RNG")
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin reaches EOF")
    args = parser.parse_args(argv)
    try:
        config = FaultConfig().updated({"latency": args.latency, "seed": args.seed})
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(serve(args.port, config, args.exit_with_stdin))


# --- the parent's side -------------------------------------------------------------------

# Control calls go straight to 127.0.0.1: an HTTP(S)_PROXY in the environment must not capture them.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeOpenAIServer:
    """Runs this file as a subprocess and talks to its control endpoints with the standard library.

    >>> with FakeOpenAIServer(latency=0.05) as server:    # doctest: +SKIP
    ...     litellm.completion(model="openai/m", api_base=server.base_url, ...)
    ...     server.stats()["requests"]
    """

    def __init__(self, *, latency: float = 0.0, seed: int = 0, port: int = 0, startup_timeout: float = 30.0) -> None:
        self.latency = latency
        self.seed = seed
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, where the control endpoints live."""
        if self.port is None:
            raise RuntimeError("the fake OpenAI server is not running; call start() first")
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``api_base`` to give an OpenAI client or litellm: ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    def start(self) -> FakeOpenAIServer:
        if self._proc is not None:
            raise RuntimeError("the fake OpenAI server is already running")
        # stderr goes to a file, not a pipe: nobody drains it while the server runs, and its tail
        # explains a failed start.
        self._stderr = tempfile.TemporaryFile()
        command = [sys.executable, str(Path(__file__).resolve()), "--port", str(self.requested_port),
                   "--latency", repr(self.latency), "--seed", str(self.seed), "--exit-with-stdin"]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self.port = self._read_port(self._proc)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self, proc: subprocess.Popen[bytes]) -> int:
        # readline() blocks, so it runs on a thread and the wait gets a timeout; portable, unlike select() on pipes.
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None  # Popen was given stdout=PIPE
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            raise RuntimeError(f"the fake OpenAI server printed no PORT line within {self.startup_timeout}s"
                               f"{self._stderr_tail()}") from None
        if not line:  # EOF: the process died before listening
            code = proc.wait()
            raise RuntimeError(f"the fake OpenAI server exited with code {code} before listening{self._stderr_tail()}")
        word, _, port = line.decode().partition(" ")
        if word != "PORT" or not port.strip().isdigit():
            raise RuntimeError(f"the fake OpenAI server printed {line!r} instead of 'PORT <n>'")
        return int(port)

    def _stderr_tail(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")[-limit:]
        return f"; its stderr:\n{text}" if text else "; its stderr was empty"

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit within 5 s). Safe to call twice."""
        proc, self._proc, self.port = self._proc, None, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """The server's counters (see :meth:`FakeOpenAI.stats`)."""
        return self._call("GET", "/stats")

    def reset(self, **config: float) -> dict[str, Any]:
        """Clear the counters and seen bodies, apply `config` (FaultConfig keys), re-seed the RNG;
        returns the full configuration now in effect."""
        return self._call("POST", "/reset", config)

    def configure(self, **config: float) -> dict[str, Any]:
        """Change FaultConfig keys (the others are kept) and re-seed the RNG; returns the full
        configuration now in effect. ValueError for an unknown key or a bad value."""
        return self._call("POST", "/config", config)

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with _DIRECT.open(request, timeout=10) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            if exc.code == 400:  # the server's own explanation of a bad /config or /reset
                raise ValueError(json.loads(exc.read())["error"]["message"]) from None
            raise


if __name__ == "__main__":
    main()
