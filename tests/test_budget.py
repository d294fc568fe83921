"""Budgets (issue 14): `max_calls` and `max_cost_usd` on an evaluation, against the local OpenAI-compatible server.

What is shown: the server's own request count never exceeds what the budget allows — with concurrency, injected 500s that are
retried, hedged duplicates and an LLM judge whose calls count too; the calls not sent are rows with error_type "budget"; raising the
limit and running again sends only the rest (the answers received are cached); the budget is on the MLflow run; and a cost limit
on priced models stops the run close to the limit, never past it, by what the server billed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmops_bench as lb
from llmops_bench.providers import call_cost
from llmops_bench.scorers import llm_judge

KEY = "not-a-real-key"
PROMPT = lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}")
CASES = [{"id": f"c{i:02d}", "context": f"{i} plus one is {i + 1}.", "question": f"What is {i} plus one?", "answer": str(i + 1)}
         for i in range(40)]


def candidate(server) -> lb.Model:
    return lb.Model("openai/gpt-4o", api_base=server.base_url, api_key=KEY)


def judge(server) -> lb.Scorer:
    return llm_judge("The output answers the question correctly.", "openai/gpt-4o-mini", name="judge", api_base=server.base_url, api_key=KEY)


def run(server, cache, **kw) -> lb.Results:
    kw = {"retries": 6, "backoff_s": 0.01, "timeout_s": 5.0, "concurrency": 8, "progress": False, "log": False, **kw}
    return lb.evaluate(PROMPT, candidate(server), CASES, scorers=[judge(server), "contains()"], cache=cache, **kw)


@pytest.mark.parametrize("max_calls, concurrency", [(1, 1), (25, 8), (57, 16)])
def test_the_servers_request_count_never_exceeds_max_calls(fake_server, tmp_path, max_calls, concurrency):
    fake_server.reset(rate_500=0.2, seed=max_calls, latency=0.005)   # retried requests count as requests
    results = run(fake_server, tmp_path/"cache.sqlite", max_calls=max_calls, concurrency=concurrency)
    budget, served = results.spec["budget"], fake_server.stats()
    print(f"max_calls={max_calls}, concurrency={concurrency}: the server received {served['requests']} requests "
          f"({served['faults']['500']} answered 500); {budget['calls_not_sent']} calls not sent")
    assert served["requests"] == budget["calls_sent"] <= max_calls
    assert served["faults"]["500"] > 0 or max_calls == 1
    t = results.results
    not_sent, judge_not_sent = t.error_type == "budget", t.score_error.fillna("").str.contains("judge: .*\\(budget\\): Not sent")
    assert budget["exhausted"] and not_sent.sum() + judge_not_sent.sum() == budget["calls_not_sent"] > 0   # candidates' and judge's
    assert t.error[not_sent].str.contains(f"Not sent: the budget \\(max_calls={max_calls}\\)").all()
    assert results.stopping.startswith(f"The budget ({max_calls} requests) ran out")


def test_judge_calls_count_and_a_larger_budget_sends_only_the_rest(fake_server, tmp_path):
    cache = tmp_path/"cache.sqlite"
    first = run(fake_server, cache, max_calls=60)
    answered = first.results.error.isna()
    judged = first.results["score.judge"].notna()
    assert fake_server.stats()["requests"] == 60 == answered.sum() + judged.sum()   # the judge's calls are in the same budget
    assert judged.sum() > 0 and (first.results.error_type == "budget").sum() == len(CASES) - answered.sum()

    fake_server.reset()
    second = run(fake_server, cache, max_calls=1000)
    assert second.results.error.isna().all() and second.results["score.judge"].notna().all()
    # only what the first run did not get: the candidate calls not sent, and the judge calls not made
    assert fake_server.stats()["requests"] == (len(CASES) - answered.sum()) + (len(CASES) - judged.sum())
    assert second.spec["budget"] == {"max_cost_usd": None, "max_calls": 1000, "calls_sent": fake_server.stats()["requests"],
                                     "spent_usd": pytest.approx(second.spec["budget"]["spent_usd"]), "calls_not_sent": 0,
                                     "exhausted": False}


@pytest.mark.parametrize("limit", [0.003, 0.005])
def test_a_cost_limit_stops_close_to_it_and_never_past_what_the_server_billed(fake_server, tmp_path, limit):
    fake_server.reset(latency=0.005)
    results = run(fake_server, tmp_path/"cache.sqlite", max_cost_usd=limit)
    t, budget = results.results, results.spec["budget"]
    # what the server billed, priced from the usage it reported: the candidates' rows and the judge's verdicts
    billed = float(t.cost_usd.fillna(0).sum() + t["cost.judge"].fillna(0).sum())
    print(f"max_cost_usd={limit}: {fake_server.stats()['requests']} requests, billed ${billed:.6f} "
          f"({billed / limit:.0%} of the limit); {budget['calls_not_sent']} calls not sent")
    assert fake_server.stats()["requests"] == budget["calls_sent"]
    assert budget["spent_usd"] == pytest.approx(billed) and billed <= limit
    assert billed > 0.5 * limit and budget["exhausted"]   # the limit binds, and most of it is used
    one_call = call_cost("openai/gpt-4o", 20, 10)
    assert limit - billed < 20 * one_call   # it stops near the limit, not far below it


def test_a_cost_limit_needs_prices(fake_server, tmp_path):
    unpriced = lb.Model("openai/local-unpriced-model", api_base=fake_server.base_url, api_key=KEY)
    with pytest.raises(lb.LlmopsBenchError, match="use max_calls"):
        lb.evaluate(PROMPT, unpriced, CASES[:2], max_cost_usd=1.0, cache=False, progress=False, log=False)
    assert fake_server.stats()["requests"] == 0
    with pytest.raises(lb.LlmopsBenchError, match="max_calls is a whole number"):
        lb.evaluate(PROMPT, "bench/echo", CASES[:2], max_calls=-3, cache=False, progress=False, log=False)


def test_the_budget_is_on_the_mlflow_run(fake_server, tmp_path):
    from mlflow import MlflowClient
    settings = lb.load_settings(tmp_path)
    results = run(fake_server, False, max_calls=10, log=True, settings=settings)
    data = MlflowClient(lb.tracking.tracking_uri(settings)).get_run(results.run_id).data
    assert data.params["budget.max_calls"] == "10"
    assert data.metrics["budget.calls_sent"] == 10.0 == fake_server.stats()["requests"]
    assert data.metrics["budget.calls_not_sent"] == results.spec["budget"]["calls_not_sent"] > 0
    logged = lb.load(results.run_id, settings)
    assert logged.spec["budget"] == results.spec["budget"]
    assert 0 < int((logged.results.error_type == "budget").sum()) <= logged.spec["budget"]["calls_not_sent"]


def test_a_spec_and_the_command_line_set_a_budget(fake_server, tmp_path):
    "`max_calls:` in a spec file, and `--max-calls` over it on the command line, bound what the server receives."
    import csv
    with (tmp_path/"cases.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["id", "context", "question", "answer"]); w.writeheader(); w.writerows(CASES)
    (tmp_path/"spec.yaml").write_text(
        "prompts: [\"Context: {{context}}\\nQuestion: {{question}}\"]\n"
        f"models: [{{id: openai/gpt-4o, api_base: '{fake_server.base_url}', api_key: not-a-real-key}}]\n"
        "dataset: cases.csv\nscorers: [contains]\nmax_calls: 30\n")
    cli = Path(sys.executable).parent/"llmops-bench"
    for flags, allowed in (([], 30), (["--max-calls", "12"], 12)):
        env = {**os.environ, "LLMOPS_BENCH_ROOT": str(tmp_path/f"root{allowed}")}   # a cache of its own: every call is new
        env.pop("MLFLOW_TRACKING_URI", None)
        fake_server.reset()
        r = subprocess.run([str(cli), "eval", str(tmp_path/"spec.yaml"), "--json", "--no-progress", *flags], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        budget = json.loads(r.stdout)["budget"]
        assert fake_server.stats()["requests"] == budget["calls_sent"] == allowed and budget["calls_not_sent"] == len(CASES) - allowed


def test_a_job_takes_a_budget_and_the_sequential_rule(tmp_path):
    "The evaluation notebook run as a job (papermill) passes max_calls and stop on to evaluate; both are on its evaluation run."
    root = Path(__file__).resolve().parents[1]
    settings = lb.load_settings(tmp_path)
    report = lb.jobs.run(root/"nbs"/"evals"/"qa.ipynb", {"max_calls": 7, "stop": "decided", "limit": 6}, settings=settings)
    assert report.passed, report
    logged = lb.load(report.evaluations[0], settings)
    assert logged.spec["budget"]["calls_sent"] == 7 and logged.spec["budget"]["calls_not_sent"] == 5
    assert logged.spec["sequential"]["stopped_because"] == "the budget ran out"
    assert int((logged.results.error_type == "budget").sum()) == 5
