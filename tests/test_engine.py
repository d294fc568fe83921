"""The engine against a real network peer: the local OpenAI-compatible server, reached through litellm.

What is checked here crosses a process boundary: faults injected by the server, the server's own request
counter, and a run killed with SIGKILL half way. In-process behaviour is tested in the notebooks.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import llmops_bench as lb
from llmops_bench.providers import ERROR_TYPES, RETRYABLE

ROOT = Path(__file__).resolve().parents[1]
PROMPT = lb.Prompt("q", "Question {{n}}: what is {{n}} plus one?")
KEY_COLUMNS = ["variant", "case_id", "repeat", "output", "error", "prompt_tokens", "completion_tokens"]


def cases(n: int) -> list[dict]:
    return [{"id": f"case-{i:04d}", "n": i} for i in range(n)]


def model(server, name: str = "local", **settings) -> lb.Model:
    return lb.Model(f"openai/{name}", api_base=server.base_url, api_key="not-a-real-key", **settings)


def run(server, data, cache: Path, **kw) -> lb.Results:
    kw = {"concurrency": 50, "retries": 6, "timeout_s": 2.0, "backoff_s": 0.05, "progress": False, "log": False, **kw}
    return lb.evaluate(PROMPT, kw.pop("model", None) or model(server), data, cache=cache, **kw)


def test_faults_become_typed_rows_and_a_rerun_sends_nothing(fake_server, tmp_path):
    fake_server.configure(rate_429=0.10, rate_500=0.05, rate_hang=0.01, rate_malformed=0.01, retry_after=1, hang_s=30, seed=7)
    first = run(fake_server, cases(1000), tmp_path/"cache.sqlite").results
    sent = fake_server.stats()

    assert len(first) == 1000 and first.case_id.is_unique
    failed = first[first.error.notna()]
    # every row has an output unless its retries ran out, and then it says why, with a known type
    assert first.output.notna().sum() + len(failed) == 1000
    assert (failed.attempts == 7).all() and failed.error_type.isin(RETRYABLE).all()
    assert first.error_type.dropna().isin(ERROR_TYPES).all()
    # the faults really happened and were retried: attempts are counted honestly, one per request the server saw
    assert sum(sent["faults"].values()) >= 100
    assert (first.attempts > 1).sum() >= 100
    # (a hedged row's duplicate may be cancelled before it reaches the wire, when its original answers at that very moment: at
    # most one such request per hedged row, so the server saw between attempts - hedged and attempts)
    assert first.attempts.sum() - first.hedged.sum() <= sent["requests"] <= first.attempts.sum()
    assert (first.output.dropna() == "echo: " + first.loc[first.output.notna(), "input.n"].map(lambda n: f"Question {n}: what is {n} plus one?")).all()

    # a second identical run, with the faults gone, sends only what failed the first time: here nothing or almost nothing
    fake_server.reset(rate_429=0, rate_500=0, rate_hang=0, rate_malformed=0)
    second = run(fake_server, cases(1000), tmp_path/"cache.sqlite").results
    assert fake_server.stats()["requests"] == len(failed)
    assert second.cached.sum() == 1000 - len(failed) and second.error.isna().all()
    merged = first.merge(second, on=["variant", "case_id", "repeat"], suffixes=("", "_again"))
    ok = merged.error.isna()
    assert (merged.output[ok] == merged.output_again[ok]).all()


def test_a_rerun_with_everything_cached_sends_zero_requests(fake_server, tmp_path):
    run(fake_server, cases(200), tmp_path/"cache.sqlite")
    assert fake_server.stats()["requests"] == 200
    fake_server.reset()
    again = run(fake_server, cases(200), tmp_path/"cache.sqlite").results
    assert fake_server.stats()["requests"] == 0
    assert again.cached.all()


def test_repeats_sample_separately_and_reproduce(fake_server, tmp_path):
    first = run(fake_server, cases(5), tmp_path/"cache.sqlite", repeats=3).results
    assert fake_server.stats()["requests"] == 15 and sorted(first.repeat.unique()) == [0, 1, 2]
    fake_server.reset()
    again = run(fake_server, cases(5), tmp_path/"cache.sqlite", repeats=3).results
    assert fake_server.stats()["requests"] == 0
    pd.testing.assert_frame_equal(first[KEY_COLUMNS], again[KEY_COLUMNS])


def test_streaming_records_time_to_first_token(fake_server, tmp_path):
    r = run(fake_server, cases(4), tmp_path/"cache.sqlite", stream=True).results
    assert r.error.isna().all() and r.ttft_s.notna().all() and (r.ttft_s <= r.latency_s).all()
    assert (r.completion_tokens > 0).all()


def test_hung_call_times_out_and_is_typed(fake_server, tmp_path):
    r = run(fake_server, cases(2), tmp_path/"cache.sqlite", model=model(fake_server, "slow-model"), timeout_s=0.5, retries=1).results
    assert r.error_type.tolist() == ["timeout", "timeout"] and r.attempts.tolist() == [2, 2]
    assert fake_server.stats()["requests"] == 4


def test_rate_limit_honours_retry_after(fake_server, tmp_path):
    r = run(fake_server, cases(1), tmp_path/"cache.sqlite", model=model(fake_server, "always429-x"), retries=1).results
    assert r.error_type[0] == "rate_limit" and r.attempts[0] == 2
    assert r.started_at.notna().all()


def test_no_credential_reaches_the_results_or_the_cache(fake_server, tmp_path):
    secret = "sk-SENTINEL-0123456789"
    m = lb.Model("openai/always500-x", api_base=fake_server.base_url, api_key=secret)
    r = run(fake_server, cases(2), tmp_path/"cache.sqlite", model=m, retries=0).results
    ok = run(fake_server, cases(2), tmp_path/"cache.sqlite", model=lb.Model("openai/fine", api_base=fake_server.base_url, api_key=secret)).results
    assert ok.error.isna().all()
    assert secret not in r.to_csv() + ok.to_csv()
    assert not any(secret.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


KILLED_RUN = textwrap.dedent("""
    import sys, llmops_bench as lb
    base_url, cache = sys.argv[1], sys.argv[2]
    prompt = lb.Prompt("q", "Question {{n}}: what is {{n}} plus one?")
    model = lb.Model("openai/local", api_base=base_url, api_key="not-a-real-key")
    lb.evaluate(prompt, model, [{"id": f"case-{i:04d}", "n": i} for i in range(400)], concurrency=8, cache=cache,
                progress=False, log=False)
""")


def test_a_run_killed_half_way_resends_at_most_concurrency_calls(fake_server, tmp_path):
    fake_server.configure(latency=0.02)
    env = {**os.environ, "LLMOPS_BENCH_ROOT": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, fake_server.base_url, str(tmp_path/"cache.sqlite")], env=env)
    deadline = time.monotonic() + 120
    while fake_server.stats()["completed"] < 200:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = fake_server.stats()
    assert 200 <= before["requests"] < 400, before

    resumed = run(fake_server, cases(400), tmp_path/"cache.sqlite", concurrency=8).results
    after = fake_server.stats()
    assert after["repeats"] - before["repeats"] <= 8, (before, after)   # only the calls in flight at the kill are sent again
    assert after["requests"] - before["requests"] == 400 - resumed.cached.sum()

    uninterrupted = run(fake_server, cases(400), tmp_path/"fresh-cache.sqlite", concurrency=8).results
    pd.testing.assert_frame_equal(resumed[KEY_COLUMNS], uninterrupted[KEY_COLUMNS])


def test_a_cancelled_run_keeps_every_answer_that_arrived(fake_server, tmp_path):
    """What the notebook's stop button (a KeyboardInterrupt) or the widget's Stop does: cancel the run's task."""
    import asyncio
    from llmops_bench.runner import ResponseCache, Runner, plan
    fake_server.configure(latency=0.2)   # 200 calls at concurrency 4 take 10 s: ample time to cancel half way, even under load
    calls = plan(PROMPT, model(fake_server), cases(200))
    cache = ResponseCache(tmp_path/"cache.sqlite")
    runner = Runner(concurrency=4, cache=cache, progress=False)

    async def cancel_after_some():
        task = asyncio.ensure_future(runner.arun(calls))
        while len(cache) < 20:      # answers on disk, not merely sent by the server
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_after_some())
    kept = len(cache)
    assert 20 <= kept < 200
    fake_server.reset()
    again = run(fake_server, cases(200), tmp_path/"cache.sqlite").results
    assert again.cached.sum() == kept and fake_server.stats()["requests"] == 200 - kept
