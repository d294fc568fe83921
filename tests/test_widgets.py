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
from llmops_bench.views import escape
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


def run_loop(main):
    """asyncio.run(main()) on a thread of its own: a running event loop like a Jupyter kernel's, whatever loop this thread holds
    (playwright's sync API leaves one running when the browser tests ran first in the session)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool: return pool.submit(asyncio.run, main()).result()


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
    assert run.info.run_id == w.run_id and w.run_id in w.run_info.value and "llmops-bench ui" in w.run_info.value
    assert f'href="http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{w.run_id}"' in w.run_info.value   # a link, to click
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

    w, returned, ticks = run_loop(main)
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
    w = run_loop(main)
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


def test_bad_input_names_its_column_and_the_others_still_run(settings, fake_server):
    local = lb.Model("openai/local", api_base=fake_server.base_url, api_key="not-a-real-key")
    w = Compare(lb.Prompt("raw", "{{question}}"), [local, "bench/nope"], values={"question": "q?"}, log=False, settings=settings)
    w.run_button.click()
    w.wait()
    good, nope = w.columns
    assert "Unknown offline model &#x27;bench/nope&#x27;" in nope.facts.value and "Not sent." in nope.facts.value and nope.row is None
    assert "echo: q?" in good.output.value and fake_server.stats()["requests"] == 1   # the good column ran
    assert w.status.value.startswith("1 of 1 calls finished · 0 failed · 0 cached · 1 not sent (column 2)"), w.status.value
    # a prompt variable the case lacks: the column whose prompt uses it says so, the other column runs
    d = Compare([lb.Prompt("a", "{{question}}"), lb.Prompt("b", "{{question}} in {{tone}}")], ["bench/echo"], log=False, settings=settings,
                data=[{"id": "c1", "question": "q?"}])
    d.run_button.click()
    d.wait()
    assert "{{tone}}" in d.columns[1].facts.value and "{{tone}}" not in d.columns[0].facts.value
    assert "q?" in d.columns[0].output.value and "1 not sent (column 2)" in d.status.value
    assert d.run_button.disabled is False and not d.running
    # nothing runnable: nothing is sent, and the status says why, column by column
    n = Compare(lb.Prompt("b", "{{question}} in {{tone}}"), ["bench/nope"], log=False, settings=settings, data=[{"id": "c1", "question": "q?"}])
    n.run()
    n.wait()
    assert "Not sent." in n.status.value and "Column 1:" in n.status.value and n.results is None and not n.running


def test_counts_say_what_happened_to_every_call(settings):
    "Finished, failed, cached and not sent are counted apart: a column that was not sent is never one of the calls 'of' the run."
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", "bench/lead", "bench/nope"], values={"question": "counted?"},
                log=False, settings=settings)
    w.run()
    w.wait()
    assert w.status.value.startswith("2 of 2 calls finished · 1 failed · 0 cached · 1 not sent (column 3)"), w.status.value
    w.run()
    w.wait()
    assert w.status.value.startswith("2 of 2 calls finished · 1 failed · 1 cached · 1 not sent (column 3)"), w.status.value   # a failure is not cached


def test_outputs_are_marked_stale_when_their_inputs_change(settings):
    w = Compare([lb.Prompt("a", "{{context}} {{question}}"), lb.Prompt("b", "{{question}}")], ["bench/echo"], experiment="t-stale",
                values={"context": "Paris is in France.", "question": "Which city?"}, settings=settings)
    w.run()
    w.wait()
    first, second = w.columns
    assert not any(c.stale.value for c in w.columns) and w.stale_note.value == "" and "lb-stale" not in w.run_info._dom_classes
    w.variables["context"].value = "Rome is in Italy."            # only the first column's prompt uses {{context}}
    assert "context changed after this output" in first.stale.value and "lb-stale" in first._dom_classes
    assert second.stale.value == "" and "column 1" in w.stale_note.value
    assert "lb-stale" in w.run_info._dom_classes and "lb-stale" in w.diff._dom_classes
    w.variables["context"].value = "Paris is in France."          # typed back: the outputs answer what is on screen again
    assert not any(c.stale.value for c in w.columns) and w.stale_note.value == ""
    second.model.value = "bench/lead"                             # an edited column
    assert "this column was edited" in second.stale.value and first.stale.value == ""
    second.settings.value = "{not json"                           # a column that cannot run: its output is stale too
    assert "this column was edited" in second.stale.value
    # a Run that refuses a column clears every old output, link and mark; the refused column says why
    old_run = w.run_id
    w.run()
    w.wait()
    assert second.row is None and "not valid JSON" in second.facts.value and second.output.value == lb.views.output_html("")
    assert w.run_id != old_run and old_run not in w.run_info.value and not any(c.stale.value for c in w.columns)
    # with a dataset, picking another case makes every output stale
    d = Compare(lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}"), ["bench/extractive", "bench/lead"], data=DEMO,
                log=False, settings=settings)
    d.run()
    d.wait()
    d.case.value = d.case.options[2][1]
    assert all("another case is picked" in c.stale.value for c in d.columns)


def test_a_new_run_resets_ratings_and_comments(settings):
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo"], values={"question": "x?"}, log=False, settings=settings)
    w.run()
    w.wait()
    col = w.columns[0]
    col.down.click()
    col.comment.value = "too long"
    assert col.down.button_style == "danger" and "lb-pressed" in col.down._dom_classes and col.up.button_style == ""
    w.variables["question"].value = "y?"
    w.run()
    w.wait()
    assert col.comment.value == "" and col.rating is None and col.down.button_style == "" and "lb-pressed" not in col.down._dom_classes
    assert [(r["rating"], r["comment"]) for r in w.ratings] == [("down", "too long")]   # the first output's rating stays given


def test_stop_always_ends_in_a_final_status(settings, fake_server):
    "Stop pressed at any moment of a Run, including as the last output arrives, ends in a final status line, never 'stopping…'."
    fake_server.configure(latency=0.1)
    local = lb.Model("openai/local", api_base=fake_server.base_url, api_key="not-a-real-key")
    w = Compare(lb.Prompt("raw", "{{question}}"), ["bench/echo", local, lb.Model("openai/other", api_base=fake_server.base_url, api_key="x")],
                values={"question": "?"}, log=False, settings=settings, retries=0)
    finals = []
    for i in range(24):
        w.variables["question"].value = f"stop {i}?"   # a new question each time: nothing comes from the cache
        w.run()
        time.sleep(0.01 * i)               # from before the first call to after the last
        w.stop_button.click()
        w.wait(30)
        time.sleep(0.05)                   # anything late would overwrite the status now
        finals.append(w.status.value)
        assert "stopping" not in w.status.value and "lb-spinner" not in w.status.value, (i, w.status.value)
        assert w.run_button.disabled is False and w.stop_button.disabled is True
    print(f"final lines seen: {sorted(set(f.split(' · ')[0] for f in finals))}")
    # the end of a Run and a late Stop crossing: the final line stays
    w._status.say("3 of 3 calls finished", final=True)
    w._status.say(lb.views.pending("stopping…"))
    assert w.status.value == "3 of 3 calls finished"


def test_time_to_first_output_in_a_fresh_process(tmp_path):
    "Run pressed right after the widget is built, in a new Python process: seconds to the first output (printed, not asserted)."
    import subprocess, sys
    code = f"""
import time, pathlib, llmops_bench as lb
t0 = time.monotonic()
s = lb.Settings(root=pathlib.Path({str(tmp_path)!r}), tracking_uri="sqlite:///{tmp_path}/mlflow.db")
w = lb.Compare(lb.Prompt("raw", "{{{{question}}}}"), ["bench/echo", "bench/lead", "bench/extractive"], values={{"question": "Paris is in France. Which city?"}}, settings=s)
built = time.monotonic()
first = []
w.columns[0].output.observe(lambda ch: first or first.append(time.monotonic()), names="value")
w.run_button.click(); w.wait(120)
print(f"import+build {{built - t0:.2f}} s, Run -> first output {{first[0] - built:.2f}} s, Run -> run link {{time.monotonic() - built:.2f}} s")
assert w.run_id and all(c.row for c in w.columns)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    print(out.stdout.strip())
    assert "first output" in out.stdout


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
    first.up.click()                               # pressed again: withdrawn
    assert first.rating is None and tracking.read_ratings(w.run_id, settings).empty
    first.up.click()
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
    cell = g.cell("y", g.variants[1])
    assert cell.description.startswith("✗ fail · icontains 0.00\nCats purr.") and cell.style.button_color == "hsl(0, 65%, 82%)"
    assert g.cell("y", g.variants[0]).style.button_color == "hsl(120, 65%, 82%)"
    assert g.cell("y", g.variants[0]).description.startswith("✓ pass · icontains 1.00\n")
    cell.click()
    assert "case y" in g.detail.value and "rendered prompt" in g.detail.value and "lb-selected" in cell._dom_classes
    assert g.grid.children.index(g.detail) == (1 + len(g.variants)) * (g.shown.index("y") + 2)   # right under y's row
    assert "&lt;b&gt;Bold&lt;/b&gt;" in g.detail.value and "<b>Bold" not in g.detail.value


def test_runs_browser_summaries_comparison_and_plots(settings):
    p = lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}")
    for m in ("bench/extractive", "bench/lead"):
        lb.evaluate(p, m, DEMO, scorers=[scorers.icontains(column="answer")], experiment="t-runs", progress=False, settings=settings)
    lb.evaluate(p, "bench/lead", DEMO, scorers=[scorers.exact_match(column="answer")], experiment="t-runs", progress=False,
                settings=settings)   # the same variant again in a third run: told apart by run id
    r = Runs("t-runs", settings=settings)
    assert len(r.picker.options) == 3 and all("evaluation · 1 variant · demo_qa.csv · 12 cases" in o[0] for o in r.picker.options)
    r.show_button.click()
    assert "Pick one or more runs" in r.status.value
    r.picker.value = tuple(v for _, v in r.picker.options)
    r.show_button.click()
    assert "3 runs" in r.status.value and len(r.a.options) == 3
    assert sum("[" in v for _, v in r.a.options) == 2   # the two bench/lead variants carry their run ids
    assert sorted(label for label, _ in r.a.options) == sorted(lb.views.short_names([v for _, v in r.a.options]).values())   # short names, told apart
    assert "lb-table" in r.summary.value and "icontains" in r.summary.value
    r.score.value = "score.icontains"
    r.a.value = next(v for _, v in r.a.options if "extractive" in v)
    scored = set(r.results.results.dropna(subset=["score.icontains"]).variant)
    unscored = next(v for _, v in r.b.options if "lead" in v and v not in scored)
    r.b.value = unscored                    # the exact_match run has no icontains score: said in words
    assert "nothing to compare" in r.comparison.value and r.compare() is None
    r.b.value = next(v for _, v in r.b.options if "lead" in v and v in scored)
    c = r.compare()
    assert c is not None, r.comparison.value
    assert c.a == r.a.value and c.n == len(lb.Dataset.from_file(DEMO)) and escape(lb.views.verdict(c, r.names)) in r.comparison.value
    assert "is better than" in r.comparison.value and "nan" not in r.comparison.value + r.ranking.value + r.summary.value
    assert "rank" in r.ranking.value
    assert len(r.plots.children) == 3 and all(i.value[:4] == b"\x89PNG" for i in r.plots.children)
    assert Runs("no-such-experiment", settings=settings).picker.options == ()


def test_save_as_job_runs_under_papermill_to_the_same_table_without_new_calls(settings, fake_server, tmp_path, monkeypatch):
    import nbformat
    import papermill as pm
    cases = tmp_path/"cases.csv"
    pd.read_csv(DEMO, dtype=str).head(3).to_csv(cases, index=False)
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key")   # the key from the environment, as the job will have it
    local = lb.Model("openai/local", api_base=fake_server.base_url)
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


def known_disagreements() -> pd.DataFrame:
    "12 cases × 6 variants with exactly 4 disagreements; 2 more cases whose scores differ while all pass, 1 whose outputs differ."
    rows = []
    for c in range(12):
        for j in range(6):
            score = 0.0 if c in (2, 5, 7, 11) and j in (1, 4) else [0.6, 0.7, 0.8, 0.9, 1.0, 0.75][j] if c in (3, 8) else 1.0
            rows.append({"variant": f"v{j + 1}", "case_id": f"case-{c:02d}", "repeat": 0, "output": f"answer {j}" if c == 9 else "answer",
                         "error": None, "cached": False, "score.match": score})
    return pd.DataFrame(rows)


def test_grid_disagreements_are_pass_fail_splits():
    g = Grid(known_disagreements())
    g.filter.value = "disagreements"
    assert g.shown == ["case-02", "case-05", "case-07", "case-11"] and "4 of 12 cases (disagreements)" in g.count.value
    g.filter.value = "failures"
    assert g.shown == ["case-02", "case-05", "case-07", "case-11"]
    assert Grid(known_disagreements().drop(columns="score.match")).disagreements() == ["case-09"]   # no score: the outputs differ


def test_grid_pages_through_thousands_of_cases():
    n = 5000
    table = pd.DataFrame({"variant": ["a", "b", "c"] * n, "case_id": [f"c{i:05d}" for i in range(n) for _ in range(3)],
                          "output": [f"output {i}" for i in range(3 * n)], "error": [None] * (3 * n), "cached": [False] * (3 * n),
                          "score.s": [x for i in range(n) for x in (1.0, float(i % 4 > 0), 0.8 if i % 10 else 0.2)]})
    started = time.monotonic()
    g = Grid(table)
    built = time.monotonic() - started
    g.filter.value = "disagreements"
    g.sort.value = "mean+"
    g.next.click()
    print(f"Grid of {n} cases × 3 variants: built in {built:.2f} s, filtered, sorted and turned a page in {time.monotonic() - started - built:.2f} s")
    assert "1500 of 5000 cases (disagreements) · showing 21–40 · page 2 of 75" in g.count.value
    assert len(g._cells) == 20 * 3 and len(g.grid.children) == (1 + 20) * 4   # widgets for one page only, reused
