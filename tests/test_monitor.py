"""lb.monitor against real stores: a week of evaluations with the offline `bench/` models, dated day by day through
`tracking.log_evaluation(start_time=...)`, read back as trends and spend; a planted regression and a planted drift found;
no alarm between runs of the same configuration (the false-alarm rate measured over many seeds); an application's MLflow
traces turned into a dataset; the audit table.

Everything is read back through `MlflowClient` where it matters. Figures are saved to the test's folder, one copy to
/tmp/monitor-figures/ for review, and logged to MLflow as a monitor report.
"""
from __future__ import annotations

import getpass
import random
import shutil
import socket
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource
from mlflow.entities.trace_location import MlflowExperimentLocation

import llmops_bench as lb
from llmops_bench import monitor, tracking
from llmops_bench.providers import bench_embed

REVIEW = Path("/tmp/monitor-figures")
DAY0 = datetime(2026, 3, 2, 9, 0)
KEY = "sk-test-monitor"
CITIES = ["Lyon", "Porto", "Graz", "Turku", "Ghent", "Bergen", "Brno", "Cork", "Malmo", "Split", "Nantes", "Basel"]
FILLER = ["The weather there is mild most of the year.", "Visitors often mention the friendly staff.", "Its logo was redrawn twice."]
QA1 = lb.Prompt("qa", "{{context}}\n\nQuestion: {{question}}")
QA2 = lb.Prompt("qa", "Note: reply with the fact only.\n{{context}}\n\nQuestion: {{question}}")   # lead now answers with the note
PREAMBLE = "Note: reply with the fact only."
MODELS = ["bench/lead", "bench/extractive"]


def facts(n: int, seed: int = 0, filler: int = 0, start: int = 0, refuse: float = 0.0) -> list[dict]:
    """Made-up company facts: a context of three sentences in random order (plus `filler` that answers nothing), a question about
    one of them and its answer. `refuse`: the share of contexts that open with a refusal (an echoing model repeats it)."""
    rng, rows = random.Random(seed), []
    for i in range(start, start + n):
        name = rng.choice(["Nor", "Bel", "Tam", "Vel", "Qua", "Dor", "Kel", "Mar"]) + rng.choice(["vale", "wick", "tron", "mark", "stad", "holm"])
        year, staff, city = rng.randint(1900, 2020), rng.randint(10, 5000), rng.choice(CITIES)
        sentences = [f"{name} was founded in {year}.", f"{name} employs {staff} people.", f"Its head office is in {city}."]
        sentences += rng.sample(FILLER, filler)
        rng.shuffle(sentences)
        if rng.random() < refuse: sentences.insert(0, "I'm sorry, but I can't help with that.")
        question, answer = rng.choice([(f"In which year was {name} founded?", str(year)), (f"How large is the staff of {name}?", str(staff)),
                                       (f"Where is the head office of {name}?", city)])
        rows.append({"id": f"c{i:04d}", "context": " ".join(sentences), "question": question, "answer": answer})
    return rows


POOL = facts(400)
CONTAINS = "contains(column='answer')"


def evaluate(settings, prompts, cases, models=MODELS, **kw):
    return lb.evaluate(prompts, models, cases, scorers=[CONTAINS], cache=False, log=False, progress=False, settings=settings, **kw)


def log_on(settings, results, day: float, experiment: str) -> str:
    return tracking.log_evaluation(results.results, results.spec, results.summary(), experiment, settings,
                                   start_time=DAY0 + timedelta(days=day))


def save(fig, name: str, folder: Path) -> Path:
    "The figure as PNG in the test's folder, and a copy for review in /tmp/monitor-figures/."
    path = folder/name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    REVIEW.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, REVIEW/name)
    assert path.read_bytes().startswith(b"\x89PNG")
    return path


def git_repo(root: Path) -> str:
    "A git repository at `root` with one commit; its commit id."
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    (root/"notes.md").write_text("v1\n")
    subprocess.run([*git, "add", "notes.md"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=root, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """Eight days of the production prompt, one evaluation a day on that day's 80 cases, the first marked as baseline; then the
    planted regression (a new version, run on the baseline's cases) on the last day. The project is a git repository with an
    uncommitted change, and the policy allows only the bench models."""
    root = tmp_path_factory.mktemp("monitor")
    commit = git_repo(root)
    (root/"notes.md").write_text("v2, not committed\n")
    settings = lb.Settings(root=root, tracking_uri=f"sqlite:///{root}/mlflow.db", allow_models="bench/*", deny_models="bench/echo")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        daily = {day: random.Random(day).sample(POOL, 80) for day in range(8)}
        evaluations = {day: evaluate(settings, [QA1], daily[day]) for day in range(8)}
        runs = {day: log_on(settings, evaluations[day], day, "qa-prod") for day in range(8)}
        baseline = monitor.set_baseline(runs[0], settings=settings)
        planted = log_on(settings, evaluate(settings, [QA2], daily[0]), 8, "qa-prod")
        yield SimpleNamespace(root=root, settings=settings, commit=commit, daily=daily, evaluations=evaluations, runs=runs,
                              baseline=baseline, planted=planted, client=MlflowClient(tracking.tracking_uri(settings)))


# ---------------------------------------------------------------------------------------------------------------- trends

def test_trend_has_a_point_per_day_and_variant_with_its_interval(week, tmp_path):
    t = monitor.trend("qa-prod", "pass_rate", settings=week.settings)
    assert len(t) == 18 and t.time.is_monotonic_increasing                                   # 9 evaluations × 2 variants
    assert [d.date() for d in sorted(set(t.time))] == [(DAY0 + timedelta(days=k)).date() for k in range(9)]
    assert ((t.lo <= t.value) & (t.value <= t.hi)).all() and t.interval == "95% Wilson interval"
    # each point is what the variant run logged, and what the evaluation's own summary says
    first = t[t.run_id == week.runs[0]].set_index("model").value
    summary = week.evaluations[0].summary().set_index("model").pass_rate
    assert first.to_dict() == pytest.approx(summary.to_dict())
    lead = t[t.model == "bench/lead"].set_index("time").value
    assert lead.iloc[-1] == 0.0 and lead.iloc[:-1].min() > 0.15                              # the planted regression, on its day
    by_model = monitor.trend("qa-prod", "score.contains", by="model", settings=week.settings)
    assert set(by_model.series) == {"bench/lead", "bench/extractive"} and by_model.interval == "95% interval as logged"
    assert len(monitor.trend("qa-prod", since=DAY0 + timedelta(days=6), settings=week.settings)) == 6
    assert monitor.trend("qa-prod", "latency_p50_s", settings=week.settings).lo.isna().all()

    fig = t.plot()
    ax = fig.axes[0]
    assert [x.get_text() for x in ax.get_legend().get_texts()] == list(dict.fromkeys(t.series))
    assert ax.get_ylabel() == "pass_rate" and len(ax.lines) == t.series.nunique() == 4     # two versions × two models
    save(fig, "trend.png", tmp_path)
    report = monitor.log_report("trend of the week", figures={"trend.png": fig}, tables={"trend": t}, experiment="qa-prod",
                                settings=week.settings)
    logged = {a.path for a in week.client.list_artifacts(report, "plots")} | {a.path for a in week.client.list_artifacts(report)}
    assert {"plots/trend.png", "trend.json"} <= logged
    assert week.client.get_run(report).data.tags["llmops_bench.kind"] == "monitor"


def test_spend_per_day_keeps_judge_cost_apart(week, fake_server, tmp_path):
    "Three days of a priced model (gpt-4o-mini's price, on the local OpenAI-compatible server) beside a free one, graded by a priced judge."
    settings = lb.Settings(root=week.root, tracking_uri=week.settings.tracking_uri)      # another policy: every model allowed
    gpt = lb.Model("openai/gpt-4o-mini", api_base=fake_server.base_url, api_key=KEY)
    judge = lb.scorers.llm_judge("Is the answer correct and short?", "openai/gpt-4o-mini", api_base=fake_server.base_url, api_key=KEY)
    for day in range(3):
        results = lb.evaluate([QA1], [gpt, "bench/extractive"], week.daily[day][:20], scorers=[CONTAINS, judge], cache=False, log=False,
                              progress=False, settings=settings)
        log_on(settings, results, day, "qa-costs")
    c = monitor.cost("qa-costs", settings=settings)
    assert len(c) == 6 and set(c.evaluations) == {1} and set(c.calls) == {20}
    priced, free = c[c.series.str.endswith("gpt-4o-mini")], c[c.series.str.endswith("bench/extractive")]
    assert (priced.cost_usd > 0).all() and (free.cost_usd == 0).all()
    assert (priced.judge_cost_usd > 0).all() and (free.judge_cost_usd > 0).all()          # the judge is paid whoever answered
    assert (c.total_usd == c.cost_usd + c.judge_cost_usd).all() and c.unpriced_runs.sum() == 0
    # the same numbers as the variant runs' own metrics
    runs = tracking.list_runs("qa-costs", settings).query("kind == 'variant'")
    assert c.cost_usd.sum() == pytest.approx(runs["metrics.cost_usd"].sum())
    assert c.judge_cost_usd.sum() == pytest.approx(runs["metrics.judge_cost_usd"].sum())
    assert len(monitor.cost("qa-costs", by="prompt", settings=settings)) == 3
    assert monitor.trend("qa-costs", "cost_usd", settings=settings).value.gt(0).sum() == 3

    fig = c.plot()
    calls, judges = fig.axes
    assert calls.get_ylabel() == "model calls (USD)" and judges.get_ylabel() == "LLM judges (USD)"
    assert len(calls.patches) == 6 and len(judges.patches) == 6
    save(fig, "cost.png", tmp_path)
    report = monitor.log_report("spend", figures={"cost.png": fig}, tables={"cost": c}, experiment="qa-costs", settings=settings)
    assert "plots/cost.png" in {a.path for a in week.client.list_artifacts(report, "plots")}


# ----------------------------------------------------------------------------------------------------------- regressions

def test_a_planted_regression_is_found_with_its_flipped_cases(week):
    report = monitor.regressions(week.planted, settings=week.settings)
    assert report.baseline_run_id == week.runs[0] and report.regressed and report.exit_code == 1
    worse = report.comparisons[report.comparisons.worse]
    assert set(zip(worse.variant, worse.metric)) == {(f"qa@{QA2.version} · bench/lead", "contains")}
    assert report.comparisons.p_holm.notna().all() and (report.comparisons.p_holm >= report.comparisons.p_value).all()
    # the flipped cases are exactly those the lead model got right in the baseline, with both outputs
    base = week.evaluations[0].results
    right = base[(base.model == "bench/lead") & (base["score.contains"] == 1)]
    flips = report.flips.set_index("case_id")
    assert set(flips.index) == set(right.case_id) and len(flips) >= 15
    assert flips.baseline_output.to_dict() == right.set_index("case_id").output.to_dict()
    assert set(flips.output) == {PREAMBLE}
    assert report.verdict.startswith(f"REGRESSION against baseline {week.runs[0]}")
    assert f"{len(flips)} case(s) flipped pass → fail" in report.verdict
    assert "contains on qa@" in repr(report)


def test_no_regression_between_runs_of_the_same_configuration(week):
    again = log_on(week.settings, evaluate(week.settings, [QA1], week.daily[0], repeats=2), 8.5, "qa-prod")
    report = monitor.regressions(again, settings=week.settings)
    assert not report.regressed and report.exit_code == 0 and len(report.flips) == 0
    assert report.verdict.startswith("No regression against baseline") and "0 case(s) flipped" in report.verdict
    # an explicit baseline, here a later day on other cases: compared on the cases both ran, nothing significant either
    other = monitor.regressions(week.runs[3], baseline=week.runs[0], settings=week.settings)
    assert not other.regressed and (other.comparisons.n < 80).all()


def test_set_baseline_through_a_server_moves_the_registry_alias(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = lb.Settings(root=tmp_path, tracking_uri=mlflow_server.url)
    registered = tracking.register_prompt(lb.Prompt("monitor-qa", QA1.template), settings=settings)
    run = lb.evaluate([registered], ["bench/extractive"], POOL[:30], scorers=[CONTAINS], cache=False, progress=False,
                      experiment="monitor-baseline", settings=settings).run_id
    marked = monitor.set_baseline(run, settings=settings)
    assert marked.aliases == {"monitor-qa": registered.version} and "prompts:/monitor-qa@production -> version 1" in repr(marked)
    assert MlflowClient(mlflow_server.url).get_prompt_version_by_alias("monitor-qa", "production").version == 1
    assert tracking.baseline_run(experiment="monitor-baseline", settings=settings) == run
    # a run comparing two registered versions of the prompt: the run is marked, the alias is left where it was
    v2 = tracking.register_prompt(lb.Prompt("monitor-qa", QA2.template), settings=settings)
    both = lb.evaluate([registered, v2], ["bench/extractive"], POOL[:30], scorers=[CONTAINS], cache=False, progress=False,
                       experiment="monitor-baseline", settings=settings).run_id
    marked = monitor.set_baseline(both, settings=settings)
    assert marked.aliases == {} and marked.ambiguous == {"monitor-qa": ["1", "2"]}
    assert tracking.prompt_alias("monitor-qa", "production", settings).version == "1"
    assert tracking.baseline_run(experiment="monitor-baseline", settings=settings) == both


# ------------------------------------------------------------------------------------------------------------------ drift

def test_a_planted_drift_is_found(week, tmp_path):
    "Traffic whose contexts carry three filler sentences: longer inputs, and a first-sentence model that now often answers filler."
    before = log_on(week.settings, evaluate(week.settings, [QA1], random.Random(50).sample(POOL, 200)), 9, "qa-drift")
    after = log_on(week.settings, evaluate(week.settings, [QA1], facts(200, seed=51, filler=3, start=5000)), 10, "qa-drift")
    embed = lambda texts: [bench_embed(t) for t in texts]
    report = monitor.drift(before, after, embed=embed, permutations=199, settings=week.settings)
    tests = report.tests.set_index("test")
    assert report.drifted and report.verdict.startswith("DRIFT between a (run ")
    assert tests.loc["input length", "drifted"] and tests.loc["input length", "value"] > 0.9
    assert tests.loc["input embedding", "drifted"]
    assert tests.loc["score.contains", "drifted"]                    # the lead model's pass rate fell, pooled over both variants
    assert not tests.loc["error rate", "drifted"] and tests.loc["error rate", "verdict"] == "not tested: nothing to compare"
    assert set(tests.threshold) == {"p_holm < 0.05"} and (tests.p_holm.dropna() >= tests.p_value.dropna()).all()
    assert "drift: input length differs" in tests.loc["input length", "verdict"]
    lead = monitor.drift(before, after, variant=f"qa@{QA1.version} · bench/lead", settings=week.settings)
    assert lead.tests.set_index("test").loc["score.contains", "drifted"]

    fig = report.plot()
    assert "tests found drift" in fig.get_suptitle()
    assert [ax.get_title(loc="left") for ax in fig.axes[:2]] == ["input length (characters)", "output length (characters)"]
    save(fig, "drift.png", tmp_path)
    rid = monitor.log_report("drift of the week", figures={"drift.png": fig}, tables={"drift": report.tests}, experiment="qa-drift",
                             settings=week.settings)
    assert "plots/drift.png" in {a.path for a in week.client.list_artifacts(rid, "plots")}


def test_drift_in_error_and_refusal_rates(fake_server):
    "An echoing model on the local server: the later traffic opens with refusals more often, and the server fails a share of calls."
    echo = lb.Model("openai/echo-model", api_base=fake_server.base_url, api_key=KEY)
    kw = dict(scorers=[CONTAINS], cache=False, log=False, progress=False, retries=0)
    before = lb.evaluate([QA1], [echo], facts(150, seed=60), **kw)
    fake_server.configure(rate_500=0.25, seed=3)
    after = lb.evaluate([QA1], [echo], facts(150, seed=61, refuse=0.4), **kw)
    report = monitor.drift(before, after)
    tests = report.tests.set_index("test")
    assert tests.loc["error rate", "drifted"] and tests.loc["refusal rate", "drifted"], report
    assert tests.loc["error rate", "b"].startswith(f"{int(after.results.error.notna().sum())}/150")
    assert tests.loc["refusal rate", "value"] > 0.25


def test_no_false_alarm_between_runs_of_the_same_configuration(tmp_path):
    """Two disjoint samples of the same traffic, each evaluated with the same configuration, over 40 seeds: the drift tests
    (lengths, the score, error and refusal rates, input and output embeddings), Holm-corrected, raise an alarm in at most 4 of 40
    pairs (the family-wise error rate is at most 5% by construction; the seeds are fixed, so the count is too). The measured rate
    is written to /tmp/monitor-figures/false_alarms.txt for the record."""
    settings = lb.Settings(root=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    embed = lambda texts: [bench_embed(t) for t in texts]
    alarms, seeds, smallest = [], range(40), []
    for seed in seeds:
        cases = random.Random(seed).sample(POOL, 160)                 # two disjoint samples of the same traffic
        a, b = evaluate(settings, [QA1], cases[:80]), evaluate(settings, [QA1], cases[80:])
        report = monitor.drift(a, b, embed=embed, permutations=199, seed=seed)
        smallest.append(float(report.tests.p_holm.min()))
        if report.drifted: alarms.append((seed, report.verdict))
    rate = len(alarms) / len(seeds)
    REVIEW.mkdir(parents=True, exist_ok=True)
    (REVIEW/"false_alarms.txt").write_text(f"drift false-alarm rate over {len(seeds)} pairs of same-configuration runs: {rate:.3f} ({len(alarms)}/{len(seeds)})\n"
                                           f"smallest Holm p-value per pair: {', '.join(f'{p:.3g}' for p in smallest)}\n"
                                           + "".join(f"seed {s}: {v}\n" for s, v in alarms))
    print(f"false-alarm rate {rate:.2f} ({len(alarms)}/{len(seeds)})")
    assert rate <= 0.10, alarms
    same = monitor.drift(a, a)                                        # a run against itself: nothing at all
    assert not same.drifted and set(same.tests.p_value.dropna()) == {1.0}


# ---------------------------------------------------------------------------------------------------------- traces, audit

def test_dataset_from_the_traces_of_a_small_app(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = lb.Settings(root=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = tracking.ensure_experiment("support-app", settings)

    @mlflow.trace
    def support_app(question: str, context: str) -> str:
        return context.split(". ")[0] + "."

    asked = POOL[:30] + POOL[:10]                                   # ten questions asked twice
    with tracking.global_tracking_uri(tracking.tracking_uri(settings)):
        mlflow.tracing.set_destination(MlflowExperimentLocation(exp))
        try:
            ids = []
            for n, case in enumerate(asked):
                if n == 30: time.sleep(0.05)                        # the repeated requests come later
                support_app(case["question"], case["context"])
                ids.append(mlflow.get_last_active_trace_id())
            mlflow.flush_trace_async_logging()
            user = AssessmentSource(source_type="HUMAN", source_id="user-7")
            for i, tid in enumerate(ids[30:36]): mlflow.log_feedback(trace_id=tid, name="thumbs_up", value=i % 2 == 0, source=user)
        finally: mlflow.tracing.reset()
    # the workbench's own traced evaluation in the same experiment is not the application's traffic
    lb.evaluate([QA1], ["bench/lead"], POOL[:5], scorers=[CONTAINS], cache=False, progress=False, experiment="support-app",
                trace=True, settings=settings)

    traces = tracking.read_traces("support-app", settings=settings)
    assert len(traces) == 40 and set(traces.name) == {"support_app"}
    everything = tracking.read_traces("support-app", include_evaluations=True, settings=settings)
    assert len(everything) == 45
    full = monitor.dataset_from_traces("support-app", settings=settings)
    assert len(full) == 30 and full.columns == ["question", "context", "trace_id", "output", "feedback.thumbs_up"]
    by_question = {c.inputs["question"]: c.inputs for c in full}
    assert by_question[POOL[0]["question"]]["trace_id"] == ids[30]                      # the newest trace of a repeated request
    assert by_question[POOL[0]["question"]]["feedback.thumbs_up"] is True
    assert by_question[POOL[1]["question"]]["feedback.thumbs_up"] is False
    assert full.cases[0].id == lb.Dataset.from_traces(traces).cases[0].id                # the same as the two steps apart
    sample = monitor.dataset_from_traces("support-app", sample=12, seed=3, settings=settings)
    again = monitor.dataset_from_traces("support-app", sample=12, seed=3, settings=settings)
    other = monitor.dataset_from_traces("support-app", sample=12, seed=4, settings=settings)
    assert len(sample) == 12 and [c.id for c in sample] == [c.id for c in again] != [c.id for c in other]
    assert {c.id for c in sample} <= {c.id for c in full}
    with pytest.raises(lb.DatasetError, match="No traces"): monitor.dataset_from_traces("support-app", since="2099-01-01", settings=settings)
    # a candidate evaluated on real traffic, the app's answers as the reference
    results = lb.evaluate([QA1], ["bench/lead"], sample, scorers=["contains(column='output')"], cache=False, log=False, progress=False,
                          settings=settings)
    assert len(results.results) == 12 and results.results["score.contains"].mean() == 1.0


def test_audit_says_who_ran_what_when_with_which_prompts_models_and_policy(week):
    table = monitor.audit("qa-prod", settings=week.settings)
    runs = tracking.list_runs("qa-prod", week.settings)
    assert set(table.run_id) == set(runs[runs.kind == "evaluation"].run_id) and table.start_time.is_monotonic_decreasing
    row = table.set_index("run_id").loc[week.runs[0]]
    assert (row.user, row.host) == (getpass.getuser(), socket.gethostname())
    assert (row.git_commit, row.git_dirty) == (week.commit, True)
    assert (row.allow_models, row.deny_models) == ("bench/*", "bench/echo")
    assert row.prompts == f"qa/{QA1.version}" and row.models == "bench/lead, bench/extractive"
    assert "mlflow " in row.versions and "llmops-bench " in row.versions
    assert row.baselines == "production" and row.start_time.to_pydatetime().replace(tzinfo=None) == DAY0
    assert table.set_index("run_id").loc[week.planted].prompts == f"qa/{QA2.version}"
    # the same facts, read straight from the run as MLflow keeps them
    run = week.client.get_run(week.runs[0])
    assert run.data.tags["mlflow.user"] == getpass.getuser() and run.data.params["git.dirty"] == "true"
    recent = monitor.audit("qa-prod", since=DAY0 + timedelta(days=7), settings=week.settings)
    assert week.runs[7] in set(recent.run_id) and week.planted in set(recent.run_id) and week.runs[6] not in set(recent.run_id)
