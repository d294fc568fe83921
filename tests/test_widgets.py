"""The widgets without a browser: build them, set values, click, and check widget state and what lands in MLflow.

Everything here reads widget state (HTML.value, Image.value, options): the same state a browser renders. Offline models
(`bench/`), plus the local fake OpenAI server where a test needs a call that hangs or a hit counter.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import ipywidgets as W
import pandas as pd
import pytest

import llmops_bench as lb
from llmops_bench import evaluation, jobs, scorers, tracking
from llmops_bench.widgets import Compare, Grid, Runs

ATTACK = '<script>window.__xss = 1</script> <img src=x onerror="window.__xss = 2"> Paris is in France. Which city?'
QA = lb.Prompt("qa", "{{context}}\n{{question}}")
DEMO = Path(lb.core.__file__).parent/"data"/"demo_qa.csv"
KEYS = ["variant", "case_id", "repeat", "output", "error", "prompt_tokens", "completion_tokens"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> lb.Settings:
    "One temporary MLflow store and response cache for the module (creating an MLflow database costs seconds)."
    root = tmp_path_factory.mktemp("widgets")
    return lb.Settings(root=root, tracking_uri=f"sqlite:///{root}/mlflow.db")


@pytest.fixture(autouse=True)
def _close_widgets():
    yield
    W.Widget.close_all()


def wait_until(check, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end: raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def evaluations(settings: lb.Settings, experiment: str) -> list:
    client = tracking.mlflow_client(settings)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], "tags.`llmops_bench.kind` = 'evaluation'")


def test_compare_runs_columns_side_by_side_and_logs_a_run(settings):
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", "bench/lead"], values={"question": ATTACK},
                experiment="t-compare", settings=settings)
    assert [c.model.value for c in w.columns] == ["bench/echo", "bench/lead"]
    assert list(w.variables) == ["question"] and "question" in w.columns[0].variables.value
    assert {"bench/echo", "bench/lead", "bench/extractive"} <= set(w.columns[0].model.options)
    w.run_button.click()
    w.wait()
    echo, lead = w.columns
    # untrusted output is shown as text: the markup is escaped, never live
    for col in (echo, lead):
        assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in col.output.value
        assert "<script" not in col.output.value and "<img" not in col.output.value
    assert "Which city?" in echo.output.value and "Which city?" not in lead.output.value   # echo vs first context sentence
    for col in (echo, lead):
        assert "latency" in col.facts.value and "ttft" in col.facts.value and "tokens" in col.facts.value
        assert "cost $0" in col.facts.value and "sent" in col.facts.value
    assert "2 of 2 calls finished" in w.status.value and "0 failed" in w.status.value
    # the run in MLflow: a parent evaluation with one child per column, results table as logged
    [run] = evaluations(settings, "t-compare")
    assert run.info.run_id == w.run_id and w.run_id in w.run_info.value and "mlflow ui --backend-store-uri" in w.run_info.value
    client = tracking.mlflow_client(settings)
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{w.run_id}'")
    assert sorted(c.data.tags["llmops_bench.variant"] for c in children) == sorted(c.name for c in w.columns)
    logged = lb.load(w.run_id, settings=settings).results
    pd.testing.assert_frame_equal(logged[KEYS].reset_index(drop=True), w.results.results[KEYS].reset_index(drop=True))
    # a second press answers from the cache and says so under each output
    w.run_button.click()
    w.wait()
    assert all("cached" in c.facts.value for c in w.columns) and "2 cached" in w.status.value


def test_compare_inside_a_running_loop_does_not_block_and_fills_columns_as_calls_finish(settings, fake_server):
    "Inside Jupyter (a running event loop) the click starts a worker thread and returns at once; each column fills as its call ends."
    slow = lb.Model("openai/local", api_base=fake_server.base_url, api_key="not-a-real-key")
    fake_server.configure(latency=1.0)   # every call on the fake server takes a second; bench/echo answers at once
    events: list[tuple[str, float]] = []

    async def main():
        w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", slow], values={"question": "hello there?"}, log=False,
                    settings=settings)
        for i, c in enumerate(w.columns):
            c.output.observe(lambda ch, i=i: ch["new"].count("hello") and events.append((f"column {i}", time.monotonic())), names="value")
        w.status.observe(lambda ch: "finished" in ch["new"] and events.append(("finished", time.monotonic())), names="value")
        clicked = time.monotonic()
        w.run_button.click()
        returned = time.monotonic() - clicked
        assert w.running and w.stop_button.disabled is False and w.run_button.disabled is True
        ticks = 0
        while w.running:   # the loop is free while the calls are in flight
            ticks += 1
            await asyncio.sleep(0.01)
        return w, returned, ticks

    w, returned, ticks = asyncio.run(main())
    assert returned < 0.5 and ticks > 20
    order = [name for name, _ in events]
    assert order[:2] == ["column 0", "column 1"] and order[-1] == "finished", order
    gap = dict(events)
    assert gap["column 1"] - gap["column 0"] > 0.5   # bench/echo was shown while the other call was still in flight
    assert "echo: hello there?" in w.columns[1].output.value and w.run_id is None and "not logged" in w.run_info.value
    assert w.run_button.disabled is False and w.stop_button.disabled is True


def test_wait_works_inside_a_running_event_loop(settings):
    "wait() joins the worker thread, so a cell of a running Jupyter kernel (a running event loop) may block on it."
    async def main():
        w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo"], values={"question": "inside?"}, log=False, settings=settings)
        w.run()
        return w.wait(30)
    w = asyncio.run(main())
    assert "inside?" in w.columns[0].output.value and "1 of 1 calls finished" in w.status.value


def test_stop_cancels_and_keeps_what_finished(settings, fake_server):
    hang = lb.Model("openai/slow-model", api_base=fake_server.base_url, api_key="not-a-real-key")
    fake_server.configure(hang_s=60)
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", hang], values={"question": "quick?"}, experiment="t-stop",
                settings=settings, retries=0, timeout_s=50)
    w.run_button.click()
    wait_until(lambda: w.columns[0].row is not None, what="the fast column")
    assert w.running
    started = time.monotonic()
    w.stop_button.click()
    w.wait(30)
    assert time.monotonic() - started < 20
    assert "quick?" in w.columns[0].output.value
    assert "stopped before it finished" in w.columns[1].facts.value and w.columns[1].row is None
    assert "stopped: 1 of 2 calls finished" in w.status.value
    assert list(w.results.results.variant) == [w.columns[0].name]
    [run] = evaluations(settings, "t-stop")   # what finished is logged
    assert run.info.run_id == w.run_id
    assert w.run_button.disabled is False and w.stop_button.disabled is True


def test_failures_are_said_in_words(settings):
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", "bench/lead"], values={"question": "only a question?"},
                log=False, settings=settings)
    w.run_button.click()
    w.wait()
    echo, lead = w.columns
    assert "only a question?" in echo.output.value
    assert "Failed: the reply could not be used" in lead.facts.value and "empty reply" in lead.facts.value
    assert "2 of 2 calls finished · 1 failed" in w.status.value


def test_bad_input_names_its_column_and_sends_nothing(settings, fake_server):
    local = lb.Model("openai/local", api_base=fake_server.base_url, api_key="not-a-real-key")
    w = Compare(lb.Prompt("raw", "{{question}}"), [local, "bench/nope"], values={"question": "q?"}, log=False, settings=settings)
    w.run_button.click()
    w.wait()
    good, nope = w.columns
    assert "Not sent." in w.status.value and "Unknown offline model &#x27;bench/nope&#x27;" in w.status.value
    assert lb.widgets.escape(nope.name) in w.status.value and lb.widgets.escape(good.name) not in w.status.value
    assert "Unknown offline model" in nope.facts.value and "not sent" in good.facts.value and good.row is None
    assert fake_server.stats()["requests"] == 0 and w.results is None   # nothing was sent, not even the good column's call
    # a prompt variable the case lacks: the column whose prompt uses it is named
    d = Compare([lb.Prompt("a", "{{question}}"), lb.Prompt("b", "{{question}} in {{tone}}")], ["bench/echo"], log=False, settings=settings,
                data=[{"id": "c1", "question": "q?"}])
    d.run_button.click()
    d.wait()
    assert "Not sent." in d.status.value and "{{tone}}" in d.status.value
    assert lb.widgets.escape(d.columns[1].name) in d.status.value and lb.widgets.escape(d.columns[0].name) not in d.status.value
    assert d.run_button.disabled is False and not d.running


def test_editing_prompts_models_and_settings(settings):
    w = Compare([lb.Prompt("a", "{{question}}")], ["bench/echo"], values={"question": "q?"}, log=False, settings=settings)
    col = w.columns[0]
    col.prompt_text.value = "Context: {{context}} Q: {{question}}"
    assert list(w.variables) == ["context", "question"] and "context, question" in col.variables.value
    assert col.prompt_obj().version != lb.Prompt("a", "{{question}}").version   # edited text: a new version
    col.model.value = "gpt-4o-mini"            # any litellm id, not only the listed ones
    col.settings.value = "temperature=0, top_p=0.5"
    assert col.model_obj().params == {"temperature": 0, "top_p": 0.5} and "gpt-4o-mini" in col.header.value
    col.settings.value = "{not json"
    assert "not valid JSON" in col.header.value
    col.settings.value = '{"temperature": 0.2}'
    col.model.value = "bench/echo"
    w.variables["context"].value = "Rome is in Italy."
    w.run_button.click()
    w.wait()
    assert "Context: Rome is in Italy. Q: q?" in col.output.value


def test_ratings_are_stored_on_the_run_without_duplicates(settings, monkeypatch):
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", "bench/lead"], values={"question": ATTACK}, experiment="t-rate",
                settings=settings)
    w.columns[0].up.click()
    assert "Run first" in w.columns[0].rating_status.value
    w.run_button.click()
    w.wait()
    first, second = w.columns
    first.up.click()
    first.up.click()                               # the same rating again: still one row
    first.comment.value = "correct, <b>escaped</b>"  # a comment updates the rating's row
    second.down.click()
    second.up.click()                              # changing one's mind replaces the row
    table = tracking.read_ratings(w.run_id, settings)
    assert len(table) == 2
    by_variant = table.set_index("variant")
    assert by_variant.loc[first.name, "rating"] == "up" and by_variant.loc[first.name, "comment"] == "correct, <b>escaped</b>"
    assert by_variant.loc[second.name, "rating"] == "up" and by_variant.loc[first.name, "output"].startswith("<script>")
    client = tracking.mlflow_client(settings)
    run = client.get_run(w.run_id)
    assert run.data.metrics["human.up"] == 2 and run.data.metrics["human.approval"] == 1.0
    assert {"path": "ratings.json", "type": "table"} in json.loads(run.data.tags["mlflow.loggedArtifacts"])
    child = next(r for r in client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{w.run_id}'")
                 if r.data.tags["llmops_bench.variant"] == first.name)
    assert child.data.metrics["human.up"] == 1
    assert "saved on run" in first.rating_status.value
    # the artifact is in log_table's format and listed as a table: MLflow reads it back (load_table searches runs with the
    # fluent API, which follows MLFLOW_TRACKING_URI rather than the client's URI)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    assert len(client.load_table(run.info.experiment_id, "ratings.json", run_ids=[w.run_id])) == 2


def test_ratings_with_logging_off_stay_in_the_session(settings):
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo"], values={"question": "x?"}, experiment="t-nolog", log=False,
                settings=settings)
    w.run_button.click()
    w.wait()
    w.columns[0].down.click()
    assert w.ratings == [{"variant": w.columns[0].name, "case_id": w.columns[0].row["case_id"], "rating": "down", "comment": ""}]
    assert "logging is off" in w.columns[0].rating_status.value and evaluations(settings, "t-nolog") == []


def test_word_diff_between_two_columns(settings):
    w = Compare(lb.Prompt("raw", "{{context}} {{question}}"), ["bench/echo", "bench/lead"], log=False, settings=settings,
                values={"context": "Paris is in France. It is <big>.", "question": "Which city?"})
    w.run_button.click()
    w.wait()
    assert w.diff_a.value == 0 and w.diff_b.value == 1
    assert "<del" in w.diff.value and "Which city?</del>" in w.diff.value and "&lt;big&gt;" in w.diff.value
    w.diff_b.value = 0
    assert "<del" not in w.diff.value and "<ins" not in w.diff.value


def test_case_picker_with_a_dataset_and_scores(settings):
    w = Compare(lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}"), ["bench/extractive", "bench/lead"], data=DEMO,
                scorers=["icontains(column='answer')"], log=False, settings=settings)
    assert w.variables == {} and len(w.case.options) == len(lb.Dataset.from_file(DEMO))
    w.case.value = "everest"
    assert "Mahalangur" in w.case_view.value
    w.run_button.click()
    w.wait()
    assert all(c.row["case_id"] == "everest" for c in w.columns)
    assert "icontains 1" in w.columns[0].facts.value and "icontains 0" in w.columns[1].facts.value


def test_grid_filters_and_shows_a_cell(settings):
    data = pd.DataFrame([{"id": "x", "context": "Oslo is in Norway. It is cold.", "question": "Where is Oslo?", "answer": "Norway"},
                         {"id": "y", "context": "Cats purr. <b>Bold</b> claim: dogs bark loudly.", "question": "Do dogs bark?", "answer": "bark"},
                         {"id": "z", "context": "Water is wet.", "question": "Is water wet?", "answer": "sky"}])
    ev = lb.evaluate(QA, ["bench/extractive", "bench/lead"], data, scorers=[scorers.icontains(column="answer")], log=False,
                     progress=False, settings=settings)
    g = Grid(ev)
    assert g.variants == ev.variants and g.case_ids == ["x", "y", "z"]
    assert "3 of 3 cases" in g.count.value
    g.filter.value = "disagreements"
    assert g.disagreements() == ["y"] and "1 of 3 cases" in g.count.value
    g.filter.value = "failures"
    assert g.failures() == ["y", "z"]
    cell = g.cells[("y", g.variants[1])]
    assert cell.description.startswith("0.00 │ Cats purr.") and cell.style.button_color == "hsl(0, 65%, 82%)"
    assert g.cells[("y", g.variants[0])].style.button_color == "hsl(120, 65%, 82%)"
    cell.click()
    assert "case y" in g.detail.value and "rendered prompt" in g.detail.value
    assert "&lt;b&gt;Bold&lt;/b&gt;" in g.detail.value and "<b>Bold" not in g.detail.value


def test_runs_browser_summaries_comparison_and_plots(settings):
    p = lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}")
    for m in ("bench/extractive", "bench/lead"):
        lb.evaluate(p, m, DEMO, scorers=[scorers.icontains(column="answer")], experiment="t-runs", progress=False, settings=settings)
    lb.evaluate(p, "bench/lead", DEMO, scorers=[scorers.exact_match(column="answer")], experiment="t-runs", progress=False,
                settings=settings)   # the same variant again in a third run: told apart by run id
    r = Runs("t-runs", settings=settings)
    assert len(r.picker.options) == 3 and "variants" in r.picker.options[0][0]
    r.show_button.click()
    assert "Pick one or more runs" in r.status.value
    r.picker.value = tuple(v for _, v in r.picker.options)
    r.show_button.click()
    assert "3 runs" in r.status.value and len(r.a.options) == 3
    assert sum("[" in v for v in r.a.options) == 2   # the two bench/lead variants carry their run ids
    assert "lb-table" in r.summary.value and "icontains" in r.summary.value
    r.score.value = "score.icontains"
    r.a.value = next(v for v in r.a.options if "extractive" in v)
    scored = set(r.results.results.dropna(subset=["score.icontains"]).variant)
    unscored = next(v for v in r.b.options if "lead" in v and v not in scored)
    r.b.value = unscored                    # the exact_match run has no icontains score: said in words
    assert "nothing to compare" in r.comparison.value and r.compare() is None
    r.b.value = next(v for v in r.b.options if "lead" in v and v in scored)
    c = r.compare()
    assert c is not None, r.comparison.value
    assert c.a == r.a.value and c.n == len(lb.Dataset.from_file(DEMO)) and c.verdict in r.comparison.value
    assert "rank" in r.ranking.value
    assert len(r.plots.children) == 3 and all(i.value[:4] == b"\x89PNG" for i in r.plots.children)
    assert Runs("no-such-experiment", settings=settings).picker.options == ()


def test_save_as_job_runs_under_papermill_to_the_same_table_without_new_calls(settings, fake_server, tmp_path, monkeypatch):
    import nbformat
    import papermill as pm
    cases = tmp_path/"cases.csv"
    pd.read_csv(DEMO, dtype=str).head(3).to_csv(cases, index=False)
    local = lb.Model("openai/local", api_base=fake_server.base_url, api_key="not-a-real-key")
    w = Compare(lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}"), ["bench/extractive", local], data=cases,
                scorers=["icontains(column='answer')", "length(max_words=40)"], experiment="t-job", settings=settings,
                job_folder=tmp_path/"evals")
    w.case.value = w.case.options[1][1]
    w.columns[1].settings.value = json.dumps({"api_base": fake_server.base_url, "temperature": 0})   # one more setting
    w.run_button.click()
    w.wait()
    assert fake_server.stats()["requests"] == 1
    w.job_name.value = "qa side by side"
    w.job_button.click()
    path = tmp_path/"evals"/"qa-side-by-side.ipynb"
    assert path.is_file() and str(path) in w.job_status.value
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].metadata.tags == ["parameters"] and "not-a-real-key" not in path.read_text()
    params = {p["name"]: p for p in pm.inspect_notebook(str(path)).values()}
    # papermill's inspector reads one-line parameters whose value has no "=" (so not the multi-line variants or the scorers'
    # calls); injection (-p NAME VALUE) works for every one of them
    assert {"experiment", "log", "case_ids", "repeats", "engine", "output_dir"} <= set(params)

    monkeypatch.setenv("LLMOPS_BENCH_ROOT", str(settings.root))
    monkeypatch.setenv("LLMOPS_BENCH_TRACKING_URI", settings.tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key")
    out = tmp_path/"out"
    pm.execute_notebook(str(path), str(tmp_path/"executed.ipynb"), parameters={"output_dir": str(out)}, cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False)
    assert fake_server.stats()["requests"] == 1    # the job sent nothing: every call came from the cache
    job = evaluation.Results.load(out)
    assert job.results.cached.all()
    keys = [*KEYS, "score.icontains", "score.length", "latency_s", "cost_usd"]
    pd.testing.assert_frame_equal(job.results[keys].reset_index(drop=True), w.results.results[keys].reset_index(drop=True))
    scraps = jobs.read_scraps(tmp_path/"executed.ipynb")
    assert scraps["run_id"] in {r.info.run_id for r in evaluations(settings, "t-job")}
    assert scraps["run_id"] != w.run_id   # its own run (the cached flags differ), in the same experiment


def test_save_as_job_refuses_scorer_objects_it_cannot_rebuild(settings, tmp_path):
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo"], values={"question": "q?"}, scorers=[scorers.exact_match(value="q?")],
                log=False, settings=settings, job_folder=tmp_path)
    w.job_button.click()
    assert "as code text" in w.job_status.value and not list(tmp_path.glob("*.ipynb"))


def test_run_link_points_into_the_ui_of_an_mlflow_server(mlflow_server, tmp_path):
    settings = lb.Settings(root=tmp_path, tracking_uri=mlflow_server.url)
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo"], values={"question": "q?"}, experiment="t-widgets-link",
                settings=settings)
    w.run_button.click()
    w.wait()
    exp = tracking.mlflow_client(settings).get_experiment_by_name("t-widgets-link").experiment_id
    assert f'href="{mlflow_server.url.rstrip("/")}/#/experiments/{exp}/runs/{w.run_id}"' in w.run_info.value
    w.columns[0].up.click()   # ratings go through the server's artifact store too
    assert tracking.read_ratings(w.run_id, settings).rating.tolist() == ["up"]
