"""LLM judges and embedding scorers in a whole evaluation, against the local OpenAI-compatible server.

The judge is `openai/gpt-4o-mini` served by tests/fake_openai.py (judge mode: a deterministic JSON verdict derived from the
prompt), so litellm prices it from its bundled map. What is shown: the judge's calls go through the evaluation's runner (a
re-run sends nothing; injected 500s are retried and every row still gets a verdict), its cost lands in `cost.judge`, apart from
the candidates' `cost_usd`, and a judge answering nonsense costs only its rows their score.
"""
from __future__ import annotations

import math

import pytest

import llmops_bench as lb
from llmops_bench.providers import call_cost
from llmops_bench.scorers import groundedness, llm_judge, semantic_similarity
from tests.fake_openai import NONSENSE_VERDICT, fake_embedding, judge_verdict

KEY = "not-a-real-key"
PROMPT = lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}")
CASES = [{"id": f"c{i:02d}", "context": f"{i} plus one is {i + 1}.", "question": f"What is {i} plus one?", "answer": str(i + 1)}
         for i in range(12)]
RUBRIC = "The output answers the question correctly."


def inputs(case: dict) -> dict:
    return {k: v for k, v in case.items() if k != "id"}


def judge(server, model: str = "openai/gpt-4o-mini", **kw) -> lb.Scorer:
    return llm_judge(RUBRIC, model, name="judge", api_base=server.base_url, api_key=KEY, **kw)


def evaluate(server, scorers, cache, **kw) -> lb.Results:
    candidate = lb.Model("openai/gpt-4o", api_base=server.base_url, api_key=KEY)   # priced too, at another price than the judge
    kw = {"retries": 6, "backoff_s": 0.01, "timeout_s": 5.0, "concurrency": 8, "progress": False, "log": False, **kw}
    return lb.evaluate(PROMPT, candidate, CASES, scorers=scorers, cache=cache, **kw)


def message_words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_judge_verdicts_are_cached_and_costed_apart(fake_server, tmp_path):
    j = judge(fake_server)
    first = evaluate(fake_server, [j], tmp_path / "cache.sqlite").results
    assert fake_server.stats()["requests"] == 2 * len(CASES)   # one candidate call and one judge call per case

    verdicts = [judge_verdict(j.messages(out, inputs(case))) for out, case in zip(first.output, CASES)]
    assert first["score.judge"].tolist() == [float(score) for score, _ in verdicts]
    assert first["rationale.judge"].tolist() == [reason for _, reason in verdicts]
    assert first.score_error.isna().all() and set(first["score.judge"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}

    # the judge's cost is its own calls' cost (usage as the server counts it, gpt-4o-mini's price) and is not in cost_usd,
    # which stays exactly the candidates' own (gpt-4o's price on the candidates' tokens)
    judge_cost = [call_cost("openai/gpt-4o-mini", message_words(j.messages(out, inputs(case))), len(f'{{"score": {s}, "reason": "{r}"}}'.split()))
                  for out, case, (s, r) in zip(first.output, CASES, verdicts)]
    assert first["cost.judge"].tolist() == pytest.approx(judge_cost) and min(judge_cost) > 0
    candidate_cost = [call_cost("openai/gpt-4o", int(p), int(c)) for p, c in zip(first.prompt_tokens, first.completion_tokens)]
    assert first["cost_usd"].tolist() == pytest.approx(candidate_cost)

    # a re-run: candidates and judge answered from the shared cache, nothing sent, nothing spent, same verdicts
    fake_server.reset()
    again = evaluate(fake_server, [judge(fake_server)], tmp_path / "cache.sqlite").results
    assert fake_server.stats()["requests"] == 0
    assert again.cached.all() and again["cost.judge"].sum() == 0.0
    assert again["score.judge"].tolist() == first["score.judge"].tolist()


def test_judge_calls_are_retried_like_any_other(fake_server, tmp_path):
    fake_server.configure(rate_500=0.3, seed=3)
    results = evaluate(fake_server, [judge(fake_server)], tmp_path / "cache.sqlite").results
    stats = fake_server.stats()
    assert stats["faults"]["500"] >= 3 and stats["requests"] == stats["completed"] + stats["faults"]["500"]
    assert results.error.isna().all()
    assert results["score.judge"].notna().all() and results.score_error.isna().all()   # every row got a verdict despite the 500s
    assert (results["cost.judge"] > 0).all()


@pytest.mark.parametrize("model", ["openai/fenced-judge", "openai/lines-judge"])
def test_verdicts_in_other_shapes_parse(fake_server, tmp_path, model):
    j = judge(fake_server, model)
    results = evaluate(fake_server, [j], tmp_path / "cache.sqlite").results
    expected = [float(judge_verdict(j.messages(out, inputs(case)))[0]) for out, case in zip(results.output, CASES)]
    assert results["score.judge"].tolist() == expected


def test_a_judge_answering_nonsense_gives_row_errors_not_a_failed_evaluation(fake_server, tmp_path):
    ev = evaluate(fake_server, [judge(fake_server, "openai/nonsense-judge"), lb.scorers.contains()], tmp_path / "cache.sqlite")
    r = ev.results
    assert len(r) == len(CASES) and r.error.isna().all()
    assert r["score.judge"].isna().all() and r["score.contains"].notna().all()   # the other scorer is untouched
    assert r.score_error.str.startswith("judge: JudgeError: no verdict in the judge's answer").all()
    assert r.score_error.str.contains(NONSENSE_VERDICT[:30], regex=False).all()
    assert r["cost.judge"].isna().all()   # an unpriced judge model: its cost is unknown, never invented
    assert fake_server.stats()["requests"] == 2 * len(CASES)


def test_groundedness_and_embeddings_through_the_server(fake_server, tmp_path):
    grounded = groundedness("context", "openai/gpt-4o-mini", api_base=fake_server.base_url, api_key=KEY)
    similar = semantic_similarity(model="openai/text-embedding-3-small", api_base=fake_server.base_url, api_key=KEY)
    r = evaluate(fake_server, [grounded, similar], tmp_path / "cache.sqlite").results
    expected = [float(judge_verdict(grounded.messages(out, inputs(case)))[0]) for out, case in zip(r.output, CASES)]
    assert r["score.groundedness"].tolist() == expected and set(expected) <= {0.0, 1.0}
    assert "Context:\n0 plus one is 1." in grounded.messages("x", inputs(CASES[0]))[1]["content"]

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
    want = [cosine(fake_embedding(out), fake_embedding(case["answer"])) for out, case in zip(r.output, CASES)]
    assert r["score.semantic_similarity"].tolist() == pytest.approx(want, abs=1e-6)   # float32 on the wire
    assert r["cost.semantic_similarity"].iloc[0] > 0 and r["cost.semantic_similarity"].iloc[1:].sum() == 0   # one batch, counted once
