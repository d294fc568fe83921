"""`llmops-bench runs list|show|compare|push` and `llmops-bench ui` on the embedded store of a temporary project root.

The `runs` commands run in-process through `llmops_bench.cli.main(argv)` (the console script's entry point), with
LLMOPS_BENCH_ROOT pointing at the project, as a user's shell would; `ui` runs as the installed console script in a
subprocess and is checked over HTTP.
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import llmops_bench as lb
from llmops_bench import cli
from llmops_bench.cli import DEMO_PROMPTS, demo_dataset_path
from tests.mlflow_server import free_port, healthy, server_env

MODELS = ["bench/lead", "bench/extractive"]
UNKNOWN = "0123456789abcdef0123456789abcdef"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Project:
    root: Path
    experiment: str
    a: lb.Results        # 12 cases
    b: lb.Results        # the first 6 cases: the same variants, other scores


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    base = tmp_path_factory.mktemp("cli-runs")
    root, cwd = base/"root", base/"cwd"
    root.mkdir()
    cwd.mkdir()
    experiment = f"cli-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("LLMOPS_BENCH_ROOT", str(root))
        mp.chdir(cwd)
        settings = lb.Settings(root=root)
        prompts = [lb.Prompt("qa", t) for t in DEMO_PROMPTS]
        cases = pd.read_csv(demo_dataset_path())
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)   # a logging failure must not pass silently here
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted", UserWarning)   # mlflow's own
            a = lb.evaluate(prompts, MODELS, cases, scorers=[lb.scorers.contains()], experiment=experiment, settings=settings,
                            progress=False)
            b = lb.evaluate(prompts, MODELS, cases.head(6), scorers=[lb.scorers.contains()], experiment=experiment,
                            settings=settings, progress=False)
        assert a.run_id and b.run_id and a.run_id != b.run_id
        yield Project(root, experiment, a, b)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def records(text: str) -> list[dict]:
    "JSON output as a list of records (a bare list, or an object holding one)."
    data = json.loads(text)
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        assert len(lists) == 1, f"expected one list of records in {sorted(data)}"
        data = lists[0]
    assert isinstance(data, list) and all(isinstance(r, dict) for r in data), text[:500]
    return data


def test_runs_list_json_has_every_evaluation_and_variant(project, capsys):
    code, out, err = run_cli(capsys, "runs", "list", "--experiment", project.experiment, "--json")
    assert code == 0, err
    rows = records(out)
    by_id = {r["run_id"]: r for r in rows}
    assert by_id[project.a.run_id]["kind"] == "evaluation" and by_id[project.b.run_id]["kind"] == "evaluation"
    variants = [r for r in rows if r["kind"] == "variant"]
    assert len(variants) == 8 and len(rows) == 10
    assert sorted(r["variant"] for r in variants) == sorted(project.a.variants * 2)
    assert all(r["status"] == "FINISHED" for r in rows)


def test_runs_list_prints_a_table(project, capsys):
    code, out, err = run_cli(capsys, "runs", "list", "--experiment", project.experiment)
    assert code == 0, err
    assert project.a.run_id in out and project.b.run_id in out and "evaluation" in out


def test_runs_show_json_is_the_evaluation_summary(project, capsys):
    code, out, err = run_cli(capsys, "runs", "show", project.a.run_id, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert project.a.run_id in out
    summary = records(json.dumps(shown["summary"])) if isinstance(shown, dict) and "summary" in shown else records(out)
    expected = project.a.summary().set_index("variant")["score.contains"]
    assert sorted(r["variant"] for r in summary) == sorted(expected.index)
    for r in summary:
        assert r["score.contains"] == pytest.approx(expected[r["variant"]])


def test_runs_compare_json_puts_both_summaries_side_by_side(project, capsys):
    code, out, err = run_cli(capsys, "runs", "compare", project.a.run_id, project.b.run_id, "--json")
    assert code == 0, err
    rows = records(out)
    a = project.a.summary().set_index("variant")["score.contains"]
    b = project.b.summary().set_index("variant")["score.contains"]
    assert (a != b).any(), "the two evaluations should differ somewhere for this test to mean anything"
    assert sorted(r["variant"] for r in rows) == sorted(a.index)
    for r in rows:   # whatever the keys are called, each variant's row carries both runs' values
        numbers = [v for v in r.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        assert any(v == pytest.approx(a[r["variant"]]) for v in numbers), (r, a[r["variant"]])
        assert any(v == pytest.approx(b[r["variant"]]) for v in numbers), (r, b[r["variant"]])


@pytest.mark.parametrize("argv", [["runs", "show", UNKNOWN], ["runs", "show", UNKNOWN, "--json"],
                                  ["runs", "compare", UNKNOWN, "{a}"], ["runs", "compare", "{a}", UNKNOWN, "--json"]])
def test_an_unknown_run_id_is_bad_input_and_named(project, capsys, argv):
    code, out, err = run_cli(capsys, *[a.format(a=project.a.run_id) for a in argv])
    assert code == 2, (out, err)
    assert UNKNOWN in err and "Traceback" not in err


def test_runs_push_logs_a_saved_folder_once(project, tmp_path, capsys):
    results = lb.evaluate([lb.Prompt("pushed", DEMO_PROMPTS[1])], MODELS, demo_dataset_path(), scorers=[lb.scorers.contains()],
                          settings=lb.Settings(root=project.root), progress=False, log=False)
    folder = results.save(tmp_path/"saved")
    code, out, err = run_cli(capsys, "runs", "push", str(folder), "--experiment", project.experiment)
    assert code == 0, err
    run_id = re.search(r"\b[0-9a-f]{32}\b", out)
    assert run_id, f"`runs push` printed no run id: {out!r}"
    listed = lb.runs(project.experiment, settings=lb.Settings(root=project.root))
    assert listed.loc[listed.run_id == run_id[0], "kind"].tolist() == ["evaluation"]
    assert (listed.parent_run_id == run_id[0]).sum() == 2
    # pushing the same folder again is the same run, not a second one
    code, again, err = run_cli(capsys, "runs", "push", str(folder), "--experiment", project.experiment)
    assert code == 0 and run_id[0] in again, (again, err)
    assert len(lb.runs(project.experiment, settings=lb.Settings(root=project.root))) == len(listed)


def test_runs_push_of_a_folder_without_results_is_bad_input(project, tmp_path, capsys):
    code, out, err = run_cli(capsys, "runs", "push", str(tmp_path/"nothing-here"), "--experiment", project.experiment)
    assert code == 2 and "nothing-here" in err, (out, err)


def _lines(stream) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    def pump() -> None:
        for line in iter(stream.readline, ""):
            q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return q


def test_ui_serves_the_embedded_store_on_loopback(project):
    script = Path(sys.executable).parent/"llmops-bench"
    assert script.is_file(), "the `llmops-bench` console script is not installed in this environment"
    port = free_port()
    proc = subprocess.Popen([str(script), "ui", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=server_env(LLMOPS_BENCH_ROOT=str(project.root)), cwd=project.root, start_new_session=True)
    seen: list[str] = []
    try:
        lines, deadline, address = _lines(proc.stdout), time.monotonic() + 60, None
        while address is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if m := re.search(r"https?://127\.0\.0\.1:\d+", line):
                address = m[0]
        assert address == f"http://127.0.0.1:{port}", "".join(seen)[-3000:]
        while not healthy(address, timeout=1.0):
            assert proc.poll() is None, "`llmops-bench ui` exited:\n" + "".join(seen)[-3000:]
            assert time.monotonic() < deadline, f"{address}/health did not answer within 60 s"
            time.sleep(0.3)
        # the UI's store is the project's embedded store: the experiment logged above is there
        with _DIRECT.open(f"{address}/api/2.0/mlflow/experiments/get-by-name?experiment_name={project.experiment}", timeout=10) as r:
            assert json.loads(r.read())["experiment"]["name"] == project.experiment
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C does in a terminal: the whole foreground group
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # nothing of the group may outlive the test
        except ProcessLookupError:
            pass
