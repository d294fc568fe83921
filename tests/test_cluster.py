"""A large evaluation split by cases across a real Dask cluster (a `dask scheduler` and two `dask worker` processes on 127.0.0.1),
against the local OpenAI-compatible server (the `cluster` fixture of conftest.py: module-scoped, workers w0 and w1).

What is shown: `lb.evaluate(..., cluster=ADDRESS)` gives the same rows as a run on one machine, both workers take shares, the answers
come back into the caller's response cache (a re-run on one machine sends nothing), and a worker killed mid-run costs nothing:
Dask runs its shares again on the other worker and every row arrives.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import llmops_bench as lb

KEY = "not-a-real-key"
PROMPT = lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}")
CASES = [{"id": f"c{i:03d}", "context": f"{i} plus one is {i + 1}.", "question": f"What is {i} plus one?", "answer": str(i + 1)}
         for i in range(120)]


def local_model(server) -> lb.Model:
    return lb.Model("openai/gpt-4o-mini", api_base=server.base_url, api_key=KEY)


def run(server, cache, **kw) -> lb.Results:
    kw = {"concurrency": 4, "retries": 2, "backoff_s": 0.01, "progress": False, "log": False, "scorers": ["contains(column='answer')"], **kw}
    return lb.evaluate(PROMPT, local_model(server), CASES, cache=cache, **kw)


def test_an_evaluation_split_across_two_workers(cluster, fake_server, tmp_path):
    from distributed import Client, get_task_stream
    fake_server.reset(latency=0.02)
    with Client(cluster["address"]) as client, get_task_stream(client) as tasks:
        spread = run(fake_server, tmp_path/"cache.sqlite", cluster=client)
    workers = {t["worker"] for t in tasks.data if t["key"].startswith("_worker_rows")}
    sent = fake_server.stats()["requests"]
    print(f"{len(CASES)} calls on {len(workers)} workers; the server received {sent} requests")
    assert len(workers) == 2 and sent == len(CASES)
    assert spread.results.error.isna().all() and spread.results.cached.sum() == 0

    fake_server.reset()
    here = run(fake_server, tmp_path/"cache.sqlite")   # the same evaluation on this machine: every answer is in its cache
    assert fake_server.stats()["requests"] == 0 and here.results.cached.all()
    cols = ["variant", "case_id", "output", "prompt_tokens", "cost_usd", "score.contains"]
    assert here.results[cols].equals(spread.results[cols])


def test_a_worker_killed_mid_run_loses_nothing(cluster, fake_server, tmp_path):
    from distributed import Client
    fake_server.reset(latency=0.1)   # 120 calls, 4 at a time per worker: several seconds of work for each
    victim = cluster["workers"]["w0"]
    def kill_when_half_sent() -> None:
        deadline = time.monotonic() + 120
        while fake_server.stats()["requests"] < 30 and time.monotonic() < deadline: time.sleep(0.05)
        os.killpg(os.getpgid(victim.pid), signal.SIGKILL)
    killer = threading.Thread(target=kill_when_half_sent, daemon=True)
    killer.start()
    with Client(cluster["address"]) as client:
        results = run(fake_server, tmp_path/"cache.sqlite", cluster=client)
    killer.join(timeout=5)
    sent = fake_server.stats()["requests"]
    print(f"worker w0 killed mid-run: all {len(results.results)} rows back, the server received {sent} requests "
          f"({sent - len(CASES)} sent again for the lost worker's shares)")
    assert victim.poll() is not None                                  # it really died
    assert len(results.results) == len(CASES) and results.results.error.isna().all()
    assert sorted(results.results.case_id) == sorted(c["id"] for c in CASES)
