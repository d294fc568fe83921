"""The fake OpenAI server seen through real litellm, called the way the runner calls it:
``openai/<model>`` with an ``api_base``, no hidden retries, an explicit timeout.

The exception classes asserted here are litellm 1.110's mapping of each fault; the runner's
error handling depends on them, so a litellm upgrade that changes one should fail here first.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.error
import urllib.request
from types import ModuleType
from typing import Any

import pytest

from tests.fake_openai import MALFORMED_BODY, FakeOpenAIServer

MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "hello local server"}]
ANSWER = "echo: hello local server"
USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}  # words: 2 + 3 prompt, 4 answer


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on every exception
    return litellm


def complete(litellm: ModuleType, server: FakeOpenAIServer, model: str = "test-model",
             messages: list[dict[str, str]] = MESSAGES, **kw: Any) -> Any:
    options = {"api_base": server.base_url, "api_key": "not-a-key", "num_retries": 0, "max_retries": 0,
               "timeout": 5, **kw}
    return litellm.completion(model=f"openai/{model}", messages=messages, **options)


def usage_of(usage: Any) -> dict[str, int]:
    return {key: getattr(usage, key) for key in USAGE}


def post_chat(server: FakeOpenAIServer, body: dict[str, Any]) -> tuple[int, bytes]:
    """One raw request, for tests that need many of them fast and see the status code itself."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(server.base_url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_completion_echoes_the_last_user_message_with_usage(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    response = complete(litellm, fake_server)
    assert response.choices[0].message.content == ANSWER
    assert usage_of(response.usage) == USAGE
    assert fake_server.stats()["completed"] == 1


def test_streaming_gives_the_same_text_and_usage(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    chunks = list(complete(litellm, fake_server, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usages = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert len(chunks) > 3 and text == ANSWER
    assert [usage_of(u) for u in usages] == [USAGE]
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert rebuilt.choices[0].message.content == ANSWER and usage_of(rebuilt.usage) == USAGE


def test_async_calls_overlap_on_the_server(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    fake_server.configure(latency=0.2)

    async def five() -> list[Any]:
        return await asyncio.gather(*(
            litellm.acompletion(model="openai/test-model", messages=[{"role": "user", "content": f"q{i}"}],
                                api_base=fake_server.base_url, api_key="not-a-key", num_retries=0,
                                max_retries=0, timeout=5)
            for i in range(5)))

    answers = [r.choices[0].message.content for r in asyncio.run(five())]
    assert answers == [f"echo: q{i}" for i in range(5)]
    assert fake_server.stats()["max_inflight"] == 5


def test_always429_is_a_rate_limit_error_with_retry_after(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    fake_server.configure(retry_after=1.5)
    # litellm.RateLimitError: "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit
    # reached for always429x. Please try again in 1.5s."
    with pytest.raises(litellm.RateLimitError, match="Rate limit reached") as caught:
        complete(litellm, fake_server, model="always429x")
    assert caught.value.status_code == 429
    # the headers the runner's backoff can honour: integer seconds, and OpenAI's exact milliseconds
    headers = caught.value.litellm_response_headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "1500")
    stats = fake_server.stats()
    assert stats["requests"] == 1 and stats["faults"]["429"] == 1  # one hit: no hidden SDK retry


def test_always500_is_an_internal_server_error(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    # litellm.InternalServerError: "litellm.InternalServerError: InternalServerError: OpenAIException -
    # The server had an error while processing your request. Sorry about that!"
    with pytest.raises(litellm.InternalServerError, match="server had an error") as caught:
        complete(litellm, fake_server, model="always500x")
    assert caught.value.status_code == 500
    stats = fake_server.stats()
    assert stats["requests"] == 1 and stats["faults"]["500"] == 1


def test_malformed_body_raises(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    fake_server.configure(rate_malformed=1.0)
    # A 200 with a truncated JSON body is mapped to a 500, not to a parse error:
    # litellm.InternalServerError (status_code 500): "litellm.InternalServerError: InternalServerError:
    # OpenAIException - error - Expecting value: line 1 column 25 (char 24), Received response -
    # <APIResponse [200 OK] type=<class 'openai.types.chat.chat_completion.ChatCompletion'>>, ..."
    with pytest.raises(litellm.InternalServerError, match="Expecting value"):
        complete(litellm, fake_server)
    # Streamed, the same truncated JSON in an SSE event is an exception.MidStreamFallbackError
    # (a ServiceUnavailableError, status_code 500): "litellm.MidStreamFallbackError:
    # litellm.APIConnectionError: APIConnectionError: OpenAIException - Expecting value: line 1
    # column 25 (char 24) Original exception: APIConnectionError: ..."
    with pytest.raises(litellm.exceptions.MidStreamFallbackError, match="Expecting value"):
        list(complete(litellm, fake_server, stream=True))
    assert fake_server.stats()["faults"]["malformed"] == 2
    assert post_chat(fake_server, {"model": "m", "messages": MESSAGES}) == (200, MALFORMED_BODY.encode())


@pytest.mark.parametrize(("model", "config"), [("slow-model", {}), ("test-model", {"rate_hang": 1.0})])
def test_hang_times_out(litellm: ModuleType, fake_server: FakeOpenAIServer, model: str, config: dict[str, float]) -> None:
    fake_server.configure(hang_s=5.0, **config)
    # litellm.Timeout (status_code 408): "litellm.Timeout: APITimeoutError - Request timed out.
    # Error_str: Request timed out."
    with pytest.raises(litellm.Timeout):
        complete(litellm, fake_server, model=model, timeout=0.5)
    # The client's disconnect cancels the hanging handler: nothing stays in flight for hang_s.
    deadline = time.monotonic() + 2.0
    while (stats := fake_server.stats())["inflight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stats["inflight"] == 0 and stats["completed"] == 0
    assert stats["requests"] == 1 and stats["faults"]["hang"] == 1


def test_stats_count_requests_and_repeats(litellm: ModuleType, fake_server: FakeOpenAIServer) -> None:
    other = [{"role": "user", "content": "something else"}]
    complete(litellm, fake_server)
    list(complete(litellm, fake_server, stream=True))  # same model + messages: a repeat, stream or not
    complete(litellm, fake_server, messages=other)
    complete(litellm, fake_server, model="other-model", messages=other)  # another model: a new body
    stats = fake_server.stats()
    assert {k: stats[k] for k in ("requests", "completed", "repeats", "unique")} == \
        {"requests": 4, "completed": 4, "repeats": 1, "unique": 3}
    assert stats["faults"] == {"429": 0, "500": 0, "hang": 0, "malformed": 0}

    fake_server.reset()
    assert fake_server.stats() == {"requests": 0, "completed": 0, "faults": {"429": 0, "500": 0, "hang": 0, "malformed": 0},
                                   "max_inflight": 0, "inflight": 0, "repeats": 0, "unique": 0, "arrivals": [],
                                   "embeddings": 0, "embedding_faults": 0}


def test_fault_draws_are_seeded(fake_server: FakeOpenAIServer) -> None:
    def statuses() -> list[int]:
        return [post_chat(fake_server, {"model": "m", "messages": [{"role": "user", "content": str(i)}]})[0]
                for i in range(40)]

    config = fake_server.configure(rate_429=0.3, rate_500=0.3, seed=3)
    first = statuses()
    assert fake_server.reset() == config  # reset keeps the configuration and re-seeds the RNG
    assert statuses() == first
    assert {429, 500, 200} == set(first)
    stats = fake_server.stats()
    assert (stats["faults"]["429"], stats["faults"]["500"], stats["completed"]) == \
        (first.count(429), first.count(500), first.count(200))


def test_configuration_is_validated(fake_server: FakeOpenAIServer) -> None:
    with pytest.raises(ValueError, match="known keys"):
        fake_server.configure(rate_404=0.5)
    with pytest.raises(ValueError, match="sum to at most 1"):
        fake_server.configure(rate_429=0.6, rate_500=0.6)
    assert fake_server.reset(latency=0.25)["latency"] == 0.25


def test_a_server_that_cannot_listen_fails_clearly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = FakeOpenAIServer(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"exited with code 1 before listening(?s:.*)address already in use"):
            server.start()


def test_embedding_faults_are_seeded_and_counted_apart(fake_server: FakeOpenAIServer) -> None:
    import json, urllib.error, urllib.request
    fake_server.reset(embed_rate_500=0.5)
    def status() -> int:
        req = urllib.request.Request(fake_server.base_url + "/embeddings", json.dumps({"model": "e", "input": ["a b"]}).encode(),
                                     {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r: return r.status
        except urllib.error.HTTPError as e: return e.code
    first = [status() for _ in range(12)]
    assert {200, 500} == set(first)
    stats = fake_server.stats()
    assert (stats["embeddings"], stats["embedding_faults"], stats["requests"]) == (12, first.count(500), 0)
    fake_server.reset(embed_rate_500=0.5)
    assert [status() for _ in range(12)] == first
