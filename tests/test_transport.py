"""The lean transport against the local OpenAI-compatible server, next to litellm.

OpenAI-compatible chat endpoints are called through a pooled aiohttp session (`transport = auto`); `transport = litellm` sends
the same calls through litellm. Whatever the path, the engine's promises hold: the same rows (timings and the `transport`
column aside), retries on 429 with Retry-After, 5xx and malformed bodies, timeouts, the cache, model policy, secret scrubbing,
per-model concurrency and pacing. Then what the engine adds for speed: hedged requests for the tail, a place in flight held
only while a request is out, batched cache writes, results streamed to Parquet, and no litellm import for runs that need none.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import llmops_bench as lb
from llmops_bench.providers import call_cost
from llmops_bench.runner import ResponseCache, ResultsWriter, Runner, plan

ROOT = Path(__file__).resolve().parents[1]
PROMPT = lb.Prompt("q", "Question {{n}}: what is {{n}} plus one?")
TIMINGS = ["latency_s", "ttft_s", "started_at", "total_s"]
TRANSPORTS = ["auto", "litellm"]   # the lean path (for openai/ models), and everything through litellm


def cases(n: int) -> list[dict]:
    return [{"id": f"case-{i:04d}", "n": i} for i in range(n)]


def model(server, name: str = "local", **settings) -> lb.Model:
    return lb.Model(f"openai/{name}", api_base=server.base_url, api_key="not-a-real-key", **settings)


def run(server, models, data, tmp_path: Path, transport: str = "auto", **kw) -> pd.DataFrame:
    "An evaluation through `transport`, with its own cache file; the results table."
    kw = {"concurrency": 8, "retries": 2, "timeout_s": 5.0, "backoff_s": 0.01, "progress": False, "log": False, **kw}
    settings = lb.Settings(root=tmp_path, transport=transport, **kw.pop("settings", {}))
    cache = kw.pop("cache", tmp_path/f"cache-{transport}.sqlite")
    return lb.evaluate(PROMPT, models, data, cache=cache, settings=settings, **kw).results


def sent(server) -> int:
    return server.stats()["requests"]


# --- the same rows, whichever path -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_lean_and_litellm_give_the_same_rows_errors_included(fake_server, tmp_path, stream, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake_server.configure(retry_after=0.05)
    models = [model(fake_server, "local"), model(fake_server, "gpt-4o-mini", temperature=0),   # priced: cost from the map
              model(fake_server, "always500-x"), model(fake_server, "always429-x"), model(fake_server, "slow-x", timeout=0.5),
              model(fake_server, "malformed-x"), model(fake_server, "always401-x"),
              lb.Model("openai/no-key", api_base=fake_server.base_url)]                           # refused before sending
    # a generous timeout but for the hanging model: litellm's first calls on a busy machine are slow enough to time out
    rows = {t: run(fake_server, models, cases(6), tmp_path, t, stream=stream, timeout_s=30) for t in TRANSPORTS}
    lean, via_litellm = rows["auto"], rows["litellm"]

    assert set(lean.transport) == {"lean"} and set(via_litellm.transport) == {"litellm"}
    assert sorted(lean.error_type.dropna().unique()) == ["auth", "bad_response", "rate_limit", "server", "timeout"]
    assert lean.output.notna().sum() == 12 and (lean.cost_usd[lean.model == "openai/gpt-4o-mini"] > 0).all()
    same = [c for c in lean.columns if c not in TIMINGS + ["transport"]]
    pd.testing.assert_frame_equal(lean[same], via_litellm[same])


WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_that_calls_tools_is_kept_as_the_calls_json_whichever_path(fake_server, tmp_path, stream):
    "A tool call has no text: the output is the JSON of the calls (with the text, the whole message), the same on every path and from the cache."
    ask = lb.Prompt("tools", "{{ask}}")
    data = [{"id": "call", "ask": 'call get_weather {"city": "Paris"}'}, {"id": "both", "ask": 'say Looking then call get_weather {"city": "Oslo"}'},
            {"id": "text", "ask": "hello"}]
    rows, kw = {}, {"concurrency": 2, "retries": 0, "timeout_s": 30.0, "progress": False, "log": False, "stream": stream}
    for t in TRANSPORTS:
        rows[t] = lb.evaluate(ask, model(fake_server, tools=WEATHER), data, cache=tmp_path/f"c-{t}.sqlite", **kw,
                              settings=lb.Settings(root=tmp_path, transport=t)).results.set_index("case_id")
    lean = rows["auto"]
    assert set(lean.transport) == {"lean"} and lean.error.isna().all()
    calls = json.loads(lean.output["call"])
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'} and calls[0]["type"] == "function"
    both = json.loads(lean.output["both"])
    assert both["content"] == "Looking" and both["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert lean.output["text"] == "echo: hello"
    assert rows["litellm"].output.tolist() == lean.output.tolist()
    fake_server.reset()
    again = lb.evaluate(ask, model(fake_server, tools=WEATHER), data, cache=tmp_path/"c-auto.sqlite", **kw,
                        settings=lb.Settings(root=tmp_path)).results.set_index("case_id")
    assert sent(fake_server) == 0 and again.output.tolist() == lean.output.tolist()


def test_rate_faults_fall_on_the_same_cases_either_way(fake_server, tmp_path):
    "One request per call, one at a time: the server's seeded faults hit the same cases on both paths, typed alike."
    rows = {}
    for t in TRANSPORTS:
        fake_server.reset(rate_429=0.2, rate_500=0.2, rate_malformed=0.2, seed=11)
        rows[t] = run(fake_server, model(fake_server), cases(40), tmp_path, t, concurrency=1, retries=0, settings={"hedge": False})
    assert rows["auto"].error.notna().sum() >= 10
    same = [c for c in rows["auto"].columns if c not in TIMINGS + ["transport"]]
    pd.testing.assert_frame_equal(rows["auto"][same], rows["litellm"][same])


# --- the engine's promises, on both paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_429_is_retried_after_its_retry_after(fake_server, tmp_path, transport):
    fake_server.configure(retry_after=0.3)
    r = run(fake_server, model(fake_server, "always429-x"), cases(1), tmp_path, transport, retries=2)
    assert (r.error_type[0], r.attempts[0]) == ("rate_limit", 3)
    arrivals = fake_server.stats()["arrivals"]
    assert len(arrivals) == 3 and min(b - a for a, b in zip(arrivals, arrivals[1:])) >= 0.3   # the server's own clock


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["rate_500", "rate_malformed"])
def test_server_errors_and_malformed_bodies_are_retried(fake_server, tmp_path, transport, fault):
    fake_server.reset(**{fault: 0.4, "seed": 5})
    r = run(fake_server, model(fake_server), cases(30), tmp_path, transport, retries=8)
    assert r.error.isna().all() and (r.attempts > 1).sum() >= 5
    assert r.attempts.sum() - r.hedged.sum() <= sent(fake_server) <= r.attempts.sum()   # each request counted in its row
    assert (r.output == "echo: " + r["input.n"].map(lambda n: f"Question {n}: what is {n} plus one?")).all()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_hung_call_times_out_typed_and_retried(fake_server, tmp_path, transport):
    r = run(fake_server, model(fake_server, "slow-x"), cases(2), tmp_path, transport, timeout_s=0.3, retries=1)
    assert r.error_type.tolist() == ["timeout"] * 2 and r.error.tolist() == ["no answer within 0.3 s"] * 2
    assert r.attempts.tolist() == [2, 2] and sent(fake_server) == 4


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cached_rerun_sends_nothing_and_gives_the_same_rows(fake_server, tmp_path, transport):
    first = run(fake_server, model(fake_server), cases(20), tmp_path, transport)
    fake_server.reset()
    again = run(fake_server, model(fake_server), cases(20), tmp_path, transport)
    assert sent(fake_server) == 0 and again.cached.all() and not first.cached.any()
    columns = [c for c in first.columns if c != "cached"]
    pd.testing.assert_frame_equal(first[columns], again[columns])   # timings, transport and all: the original answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_denied_model_sends_nothing(fake_server, tmp_path, transport):
    r = run(fake_server, [model(fake_server, "local"), model(fake_server, "denied-x")], cases(5), tmp_path, transport,
            settings={"deny_models": "openai/denied*"})
    assert sent(fake_server) == 5 and fake_server.stats()["unique"] == 5
    denied = r[r.model == "openai/denied-x"]
    assert (denied.error_type == "policy").all() and denied.transport.isna().all() and (denied.attempts == 0).all()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_secrets_are_scrubbed_from_error_text_and_never_stored(fake_server, tmp_path, transport):
    secret = "sk-SENTINEL-0123456789abcdef"
    bad = lb.Model("openai/always401-x", api_base=fake_server.base_url, api_key=secret)
    r = run(fake_server, bad, cases(2), tmp_path, transport)
    assert r.error_type.tolist() == ["auth", "auth"] and r.attempts.tolist() == [1, 1]   # not retried
    assert r.error.str.startswith("Incorrect API key provided:").all()                   # the server quoted the key...
    assert secret not in r.to_csv()                                                      # ... and the row does not
    assert not any(secret.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_per_model_concurrency_bounds_requests_in_flight(fake_server, tmp_path, transport):
    fake_server.configure(latency=0.05)
    r = run(fake_server, model(fake_server, concurrency=3), cases(30), tmp_path, transport, concurrency=20)
    assert r.error.isna().all()
    # a hedge is a second request for a call already holding its place: the bound holds up to the duplicates sent
    assert 3 <= fake_server.stats()["max_inflight"] <= 3 + r.hedged.sum()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rpm_spaces_requests_evenly(fake_server, tmp_path, transport):
    run(fake_server, model(fake_server, "warm-up"), cases(2), tmp_path, transport, cache=False)   # litellm's first calls are slow
    fake_server.reset()
    r = run(fake_server, model(fake_server, rpm=300), cases(8), tmp_path, transport, concurrency=8)
    assert r.error.isna().all()
    arrivals = sorted(fake_server.stats()["arrivals"])
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    # 300 rpm: one request per 0.2 s, paced when sent; what happens between the send and the wire (litellm's own work) blurs
    # the server's view by a few tens of milliseconds, never into a burst
    assert len(arrivals) == 8 and arrivals[-1] - arrivals[0] >= 0.95 * 7 * 0.2 and min(gaps) >= 0.1, gaps


# --- what the engine adds for speed ------------------------------------------------------------------------------------

def test_stuck_calls_are_hedged_and_every_case_completes_once(fake_server, tmp_path):
    "2% of requests hang 30 s; a call still unanswered after its model's p95 × 2 gets one duplicate, and the first answer wins."
    fake_server.reset(rate_hang=0.02, hang_s=30, latency=0.02, seed=2)
    priced = model(fake_server, "gpt-4o-mini")
    r = run(fake_server, priced, cases(1000), tmp_path, concurrency=50, timeout_s=60, retries=0)
    stats, hedged = fake_server.stats(), r[r.hedged]
    print(f"\nhedged share: {len(hedged) / len(r):.1%} ({len(hedged)} of {len(r)} calls; the server hung {stats['faults']['hang']} requests)")

    assert len(r) == 1000 and r.case_id.is_unique and r.error.isna().all()   # every case, once
    assert 0 < len(hedged) <= 0.05 * stats["requests"] + 1                     # the budget: at most 5% (+1) duplicates
    # a row that waited out a hang had both its requests hang; without hedging every hung request would make one
    waited = (r.latency_s >= 30).sum()
    assert stats["faults"]["hang"] >= 1 and 2 * waited <= stats["faults"]["hang"]
    assert (hedged.attempts == 2).all() and (r[~r.hedged].attempts == 1).all()
    assert r.attempts.sum() - len(hedged) <= stats["requests"] <= r.attempts.sum()
    # cost counts what was spent: a hedged call paid for both of its requests (the loser was cancelled in flight)
    tokens = call_cost("gpt-4o-mini", 1, 0) * r.prompt_tokens + call_cost("gpt-4o-mini", 0, 1) * r.completion_tokens
    assert ((r.cost_usd - tokens).abs() < 1e-12)[~r.hedged].all()
    assert ((r.cost_usd - 2 * tokens).abs() < 1e-12)[r.hedged].all()


def test_hedging_is_off_with_the_setting(fake_server, tmp_path):
    fake_server.reset(rate_hang=0.2, hang_s=0.5, seed=2)
    r = run(fake_server, model(fake_server), cases(60), tmp_path, timeout_s=60, settings={"hedge": False})
    assert not r.hedged.any() and r.error.isna().all() and (r.latency_s >= 0.5).sum() >= 5
    assert r.attempts.sum() == sent(fake_server)


def test_a_call_waiting_out_a_retry_after_leaves_its_place_to_others(fake_server, tmp_path):
    fake_server.configure(retry_after=1.0)
    slow_429, fine = model(fake_server, "always429-x"), model(fake_server, "local")
    calls = plan(PROMPT, [slow_429, fine], cases(10))
    finished = []
    Runner(concurrency=1, retries=1, progress=False).run(calls)   # warm-up of imports, untimed
    fake_server.reset(retry_after=1.0)
    runner = Runner(concurrency=1, retries=1, progress=False)
    lb.runner.run_sync(lambda: runner.arun(calls, on_row=lambda row: finished.append(row["model"])))
    # with one place in flight, the ten fine calls all finish while the 429s wait out their Retry-After
    assert finished[:10] == ["openai/local"] * 10 and finished[10:] == ["openai/always429-x"] * 10


def test_answers_reach_the_cache_in_batches_and_before_their_rows(fake_server, tmp_path):
    fake_server.configure(latency=0.01)
    cache = ResponseCache(tmp_path/"cache.sqlite")
    commits, put_many = [], cache.put_many
    cache.put_many = lambda items: (commits.append(len(items)), put_many(items))
    calls, runner = plan(PROMPT, model(fake_server), cases(300)), Runner(concurrency=50, cache=cache, progress=False)
    key, reader = {c.case.id: runner.cache_key(c) for c in calls}, ResponseCache(tmp_path/"cache.sqlite")   # a second connection
    on_disk = []
    lb.runner.run_sync(lambda: runner.arun(
        calls, on_row=lambda row: on_disk.append(key[row["case_id"]] in reader.get_many([key[row["case_id"]]]))))
    assert len(on_disk) == 300 and all(on_disk)            # each answer was committed before its row was reported
    assert sum(commits) == 300 and len(commits) < 300      # in fewer transactions than answers
    print(f"\n300 answers in {len(commits)} transactions")


def test_rows_stream_to_parquet_without_being_kept(fake_server, tmp_path):
    calls = plan(PROMPT, model(fake_server), cases(2500))
    with ResultsWriter(tmp_path/"results.parquet", chunk_rows=1000) as writer:
        kept = lb.runner.run_sync(lambda: Runner(concurrency=50, progress=False).arun(calls, on_row=writer, keep=False))
    assert kept == []
    import pyarrow.parquet as pq
    assert pq.ParquetFile(tmp_path/"results.parquet").num_row_groups == 3
    streamed = pd.read_parquet(tmp_path/"results.parquet").sort_values("case_id", ignore_index=True)
    kept = Runner(concurrency=50, progress=False).run(calls).sort_values("case_id", ignore_index=True)
    same = ["variant", "case_id", "repeat", "output", "error", "prompt_tokens", "completion_tokens", "transport"]
    plain = lambda df: df[same].astype(object).where(df[same].notna(), None)   # Parquet's strings read back as pandas' str dtype
    pd.testing.assert_frame_equal(plain(streamed), plain(kept))


def test_a_run_holds_a_bounded_number_of_calls_in_progress(fake_server, tmp_path):
    "Not a task per call: a few workers per place in flight take each model's calls in turn, whatever the size of the run."
    import asyncio
    calls = plan(PROMPT, [model(fake_server, "a"), model(fake_server, "b")], cases(1000))
    alive = []
    async def go():
        return await Runner(concurrency=10, progress=False).arun(calls, on_row=lambda row: alive.append(len(asyncio.all_tasks())))
    rows = asyncio.run(go())
    assert len(rows) == 2000 and all(r["error"] is None for r in rows)
    assert max(alive) <= 2 * 4 * 10 + 20   # two models' workers (4 per place), the requests in flight, the cache writer


LAZY_RUN = textwrap.dedent("""
    import json, sys
    import llmops_bench as lb
    assert not {"litellm", "aiohttp", "pandas"} & set(sys.modules), "import llmops_bench stays lazy"
    prompt = lb.Prompt("q", "Context: Paris is in France. Rome is in Italy. Question: Where is {{city}}?")
    models = ["bench/extractive", "bench/lead", lb.Model("openai/local", api_base=sys.argv[1], api_key="k")]
    lb.providers.check_model(lb.Model("gpt-4o-mini"))
    r = lb.evaluate(prompt, models, [{"city": "Rome"}, {"city": "Paris"}], log=False, cache=False, progress=False).results
    assert r.error.isna().all(), r.error.tolist()
    print(json.dumps({"transports": sorted(set(r.transport)), "litellm": "litellm" in sys.modules}))
""")


def lazy_run(server, tmp_path: Path, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", LAZY_RUN, server.base_url], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "LLMOPS_BENCH_ROOT": str(tmp_path), **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_offline_and_openai_compatible_runs_never_import_litellm(fake_server, tmp_path):
    assert lazy_run(fake_server, tmp_path) == {"transports": ["lean", "offline"], "litellm": False}
    # the setting forces litellm for every model but the offline ones
    assert lazy_run(fake_server, tmp_path, LLMOPS_BENCH_TRANSPORT="litellm") == {"transports": ["litellm", "offline"], "litellm": True}
