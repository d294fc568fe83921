"""lb.promote and lb.rollback against real stores: the registry alias moves only for a candidate that passes its gates and is
shown no worse than the current version (a paired, one-sided test on the same cases); a worse or unproven one is refused and
says why; every decision is on MLflow (the evidence run's tags, the candidate version's tag, the alias history); rollback
restores the previous version. The offline `bench/lead` model answers with the first sentence of the context, so a prompt that
opens with a note makes it fail every case: a planted, real difference between prompt versions.

Everything is read back through `MlflowClient`, as another tool (or the application loading `prompts:/NAME@production`) would.
"""
from __future__ import annotations

import getpass
import json
import random
import re

import mlflow
import pytest
from mlflow import MlflowClient

import llmops_bench as lb
from llmops_bench import tracking
from tests.test_monitor import CONTAINS, POOL

GOOD = "{{context}}\n\nQuestion: {{question}}"                                   # lead is right about a third of the time
BAD = "Note: reply with the fact only.\n{{context}}\n\nQuestion: {{question}}"   # lead answers with the note: never right
SAME = GOOD + "\n"                                                                 # another version, the same answers as GOOD
CASES = random.Random(0).sample(POOL, 80)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = lb.Settings(root=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    return settings, MlflowClient(tracking.tracking_uri(settings))


def promote(settings, template, name="faq", **kw):
    kw = {"models": ["bench/lead"], "data": CASES, "scorers": [CONTAINS], "experiment": "promotions", "cache": False, **kw}
    return lb.promote(lb.Prompt(name, template), settings=settings, **kw)


def alias(client, name="faq", alias="production"):
    return client.get_prompt_version_by_alias(name, alias).version


def test_the_first_candidate_that_passes_its_gates_goes_to_production(store):
    settings, client = store
    refused = promote(settings, BAD, gates=["pass_rate>=0.2"])
    assert not refused.promoted and refused.exit_code == 1 and refused.current is None
    assert refused.reason.startswith("Refused: 1 gate check(s) failed") and "pass_rate is 0" in refused.reason
    with pytest.raises(mlflow.exceptions.MlflowException): client.get_prompt_version_by_alias("faq", "production")
    first = promote(settings, GOOD, gates=["pass_rate>=0.2", "score.contains>=baseline"])
    assert first.promoted and first.exit_code == 0 and first.current is None and alias(client) == 2
    assert "pointed nowhere" in first.reason and "score.contains>=baseline skipped" in first.reason
    assert first.gates.passed and first.comparisons is None


def test_a_better_candidate_moves_the_alias_and_the_decision_is_on_mlflow(store):
    settings, client = store
    promote(settings, BAD)                                                       # production: the note version
    better = promote(settings, GOOD, gates=["error_rate<=0", "score.contains>=baseline"])
    assert better.promoted and (better.candidate, better.current) == ("2", "1") and alias(client) == 2
    check = better.comparisons.iloc[0]
    assert check.model == "bench/lead" and check.n == 80 and check["diff"] > 0.2 and check.lower > 0 and check.passed
    assert better.reason.startswith("Promoted over version 1: gates passed (2 checks)")
    # the decision, its evidence, who and when: on the evaluation run ...
    tags = client.get_run(better.run_id).data.tags
    assert tags["llmops_bench.kind"] == "evaluation"
    assert (tags["llmops_bench.promotion.decision"], tags["llmops_bench.promotion.alias"]) == ("promoted", "production")
    assert (tags["llmops_bench.promotion.candidate"], tags["llmops_bench.promotion.current"]) == ("prompts:/faq/2", "prompts:/faq/1")
    assert tags["llmops_bench.promotion.reason"] == better.reason and tags["llmops_bench.promotion.by"].startswith(getpass.getuser() + "@")
    assert tags["llmops_bench.promotion.at"] == better.at
    # ... on the candidate's registry version, and in the alias history on the prompt
    record = json.loads(client.get_prompt_version("faq", 2).tags["llmops_bench.promotion.production"])
    assert (record["decision"], record["run_id"], record["by"]) == ("promoted", better.run_id, better.by)
    history = json.loads(client.get_prompt("faq").tags["llmops_bench.alias_history.production"])
    assert [(h["version"], h["previous"], h["action"]) for h in history] == [("1", None, "promote"), ("2", "1", "promote")]
    assert history[-1]["run_id"] == better.run_id
    # the evidence holds both versions on the same cases
    results, _, _ = tracking.read_evaluation(better.run_id, settings)
    by_version = {v: set(g.case_id) for v, g in results.groupby("prompt_version")}
    assert set(by_version) == {"1", "2"} and by_version["1"] == by_version["2"] == {c["id"] for c in CASES}


def test_a_worse_candidate_is_refused_and_says_why(store):
    settings, client = store
    promote(settings, GOOD)
    worse = promote(settings, BAD)
    assert not worse.promoted and worse.exit_code == 1 and alias(client) == 1
    assert worse.reason.startswith("Refused: worse than version 1 on 1 of 1 checks (one-sided 95%")
    assert "contains on bench/lead: -" in worse.reason and "lower bound" in worse.reason
    assert client.get_run(worse.run_id).data.tags["llmops_bench.promotion.decision"] == "refused"
    assert json.loads(client.get_prompt_version("faq", 2).tags["llmops_bench.promotion.production"])["decision"] == "refused"
    # a candidate given by its registry URI is evaluated as it is
    again = lb.promote("prompts:/faq/2", models=["bench/lead"], data=CASES, scorers=[CONTAINS], cache=False, settings=settings)
    assert not again.promoted and again.candidate == "2"


def test_a_candidate_not_proven_better_is_refused_unless_a_margin_allows_it(store):
    settings, client = store
    promote(settings, GOOD)
    tie = promote(settings, SAME)
    assert not tie.promoted and alias(client) == 1
    assert tie.reason.startswith("Refused: not shown better than version 1") and "+0.0 pts, lower bound +0.0 pts" in tie.reason
    within = promote(settings, SAME, margin=0.05)
    assert within.promoted and alias(client) == 2 and "not worse by more than 0.05" in within.reason
    assert promote(settings, SAME).reason == "'production' already points to version 2: nothing to do."
    assert promote(settings, SAME).exit_code == 0


def test_a_failing_gate_refuses_even_a_better_candidate(store):
    settings, client = store
    promote(settings, BAD)
    gated = promote(settings, GOOD, gates=["pass_rate>=0.9"])
    assert not gated.promoted and alias(client) == 1 and gated.reason.startswith("Refused: 1 gate check(s) failed")
    assert re.search(r"pass_rate is 0\.\d+, but `pass_rate>=0.9` needs >= 0.9", gated.reason), gated.reason


def test_rollback_restores_the_previous_version(store):
    settings, client = store
    promote(settings, BAD)
    promote(settings, GOOD)
    promote(settings, SAME, margin=0.05)
    assert alias(client) == 3
    back = lb.rollback("faq", settings=settings)
    assert (back.version, back.previous) == ("2", "3") and alias(client) == 2
    assert "from version 3 to version 2" in repr(back)
    assert json.loads(client.get_prompt_version("faq", 3).tags["llmops_bench.rollback.production"])["version"] == "2"
    assert lb.rollback("faq", settings=settings).version == "1" and alias(client) == 1
    with pytest.raises(lb.LlmopsBenchError, match="No earlier version of 'faq'"): lb.rollback("faq", settings=settings)
    history = json.loads(client.get_prompt("faq").tags["llmops_bench.alias_history.production"])
    assert [h["action"] for h in history] == ["promote", "promote", "promote", "rollback", "rollback"]
    # promoted again after a rollback: the history goes on from there
    promote(settings, GOOD)
    assert alias(client) == 2 and lb.rollback("faq", settings=settings).version == "1"
    with pytest.raises(lb.LlmopsBenchError, match="points nowhere"): lb.rollback("faq", "staging", settings=settings)


def test_a_repeat_promotion_answers_the_current_version_from_the_cache(store, tmp_path):
    settings, _ = store
    cache = tmp_path/"responses.sqlite"
    promote(settings, BAD, cache=cache)
    better = promote(settings, GOOD, cache=cache)
    results, _, _ = tracking.read_evaluation(better.run_id, settings)
    assert results[results.prompt_version == "1"].cached.all() and not results[results.prompt_version == "2"].cached.any()


def test_promotion_through_a_server(mlflow_server, tmp_path, monkeypatch):
    "The alias an application reads through the team's server moves, and so does its history; rollback too."
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = lb.Settings(root=tmp_path, tracking_uri=mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    assert promote(settings, BAD, name="server-faq").promoted
    better = promote(settings, GOOD, name="server-faq")
    assert better.promoted and alias(client, "server-faq") == 2
    with tracking.global_tracking_uri(mlflow_server.url):
        assert mlflow.genai.load_prompt("prompts:/server-faq@production").template == GOOD      # what the application loads
    assert client.get_run(better.run_id).data.tags["llmops_bench.promotion.decision"] == "promoted"
    assert lb.rollback("server-faq", settings=settings).version == "1" and alias(client, "server-faq") == 1
