"""Evaluation notebooks as jobs, across the process boundaries a user crosses: papermill kernels, the CLI, worker processes.

Every job lands in a temporary project root (LLMOPS_BENCH_ROOT), so its embedded MLflow store and response cache are its own.
Kernel starts dominate the time (an evaluation notebook imports litellm and mlflow), so the runs are shared where a test only
reads what another produced, and datasets are cut to a few cases with the notebooks' `limit` parameter.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from llmops_bench import jobs, tracking
from llmops_bench.core import LlmopsBenchError, content_hash, load_settings

ROOT = Path(__file__).resolve().parents[1]
EVALS = ROOT/"nbs"/"evals"
QA, COMPARE = EVALS/"qa.ipynb", EVALS/"compare_prompts.ipynb"
CLI = Path(sys.executable).parent/"llmops-bench"
QA_PARAMS = {"models": "bench/extractive", "limit": 4}   # bench/extractive contains the answer in 3 of the first 4 cases


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def settings(root):
    return load_settings(root)


@pytest.fixture(scope="module")
def client(settings):
    return tracking.mlflow_client(settings)


def cli(root: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_BENCH_ROOT": str(root)}
    env.pop(tracking.JOB_RUN_ENV, None)
    return subprocess.run([str(CLI), *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def check_job(client, run_id: str, notebook: str) -> list:
    "The job run is a FINISHED kind=job run with its artifacts; its evaluations are its children; their variant runs are theirs."
    job = client.get_run(run_id)
    assert job.data.tags[tracking.KIND_TAG] == "job" and job.info.status == "FINISHED"
    assert job.data.tags["llmops_bench.notebook"].endswith(f"nbs/evals/{notebook}")
    arts = {a.path for a in client.list_artifacts(run_id)} | {a.path for d in ("executed", "notebook") for a in client.list_artifacts(run_id, d)}
    stem = notebook.removesuffix(".ipynb")
    assert {f"executed/{notebook}", f"executed/{stem}.html", f"notebook/{notebook}", "parameters.json", "settings.json"} <= arts, arts
    children = client.search_runs([job.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    evaluations = [r for r in children if r.data.tags[tracking.KIND_TAG] == "evaluation"]
    assert len(evaluations) == 1
    variants = client.search_runs([job.info.experiment_id], f"tags.mlflow.parentRunId = '{evaluations[0].info.run_id}'")
    assert variants and {r.data.tags[tracking.KIND_TAG] for r in variants} == {"variant"}
    return evaluations


@pytest.fixture(scope="module")
def qa_job(settings):
    return jobs.run(QA, QA_PARAMS, gates=["score.contains>=0.5", "error_rate<=0"], settings=settings)


def test_qa_through_the_api(qa_job, client):
    assert qa_job.passed and qa_job.exit_code == 0, qa_job
    evaluations = check_job(client, qa_job.run_id, "qa.ipynb")
    assert qa_job.evaluations == [evaluations[0].info.run_id] == [qa_job.scraps["run_id"]]
    assert qa_job.summary["score.contains"].tolist() == [0.75]
    assert qa_job.gates.passed.all() and len(qa_job.gates) == 2
    job = client.get_run(qa_job.run_id)
    assert job.data.metrics["gates_passed"] == 1.0 and job.data.tags["llmops_bench.gate_status"] == "passed"
    assert job.data.params["param.limit"] == "4" and job.data.params["param.models"] == "bench/extractive"
    executed = nbformat.read(qa_job.output, as_version=4)
    assert executed.metadata.papermill.parameters == {**QA_PARAMS, "experiment": "llmops-bench-jobs"}
    assert "<html" in qa_job.html.read_text()[:500].lower()


def test_compare_prompts_through_the_api(settings, client):
    report = jobs.run(COMPARE, gates=["score.contains>=0"], settings=settings)
    assert report.passed, report
    check_job(client, report.run_id, "compare_prompts.ipynb")
    uris = report.scraps["prompts"]
    assert [u.rsplit("/", 1)[1] for u in uris] == ["1", "2"] and len(report.summary) == 2
    # bench/lead answers with the first sentence: the instruction-first version never contains the answer
    assert report.summary["score.contains"].tolist()[0] == 0.0 and report.scraps["comparison"]["diff"] > 0


def test_compare_prompts_through_the_cli_passing_gate(root, client):
    done = cli(root, "job", "run", str(COMPARE), "--gate", "score.contains>=0", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and report["status"] == "FINISHED" and len(report["evaluations"]) == 1
    check_job(client, report["run_id"], "compare_prompts.ipynb")
    assert "job " in done.stderr   # progress on stderr, the result on stdout


def test_qa_through_the_cli_failing_gate(root, client):
    done = cli(root, "job", "run", str(QA), "-p", "models", "bench/extractive", "-p", "limit", "4", "--gate", "score.contains>=0.9")
    assert done.returncode == 1, done.stderr
    assert "score.contains is 0.75, but `score.contains>=0.9` needs >= 0.9" in done.stdout
    run_id = done.stdout.split()[1].rstrip(":")
    check_job(client, run_id, "qa.ipynb")
    job = client.get_run(run_id)
    assert job.data.metrics["gates_passed"] == 0.0 and job.data.tags["llmops_bench.gate_status"] == "failed"


def test_a_failing_cell_is_a_failed_run_with_the_notebook_and_exit_3(root, tmp_path, client):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    params = nbformat.v4.new_code_cell("n: int = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1\nraise ValueError(f'broken on purpose, n={n}')")]
    path = tmp_path/"broken.ipynb"
    nbformat.write(nb, path)
    done = cli(root, "job", "run", str(path), "-p", "n", "7", "--json")
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "FAILED" and report["error"] == "cell 3: ValueError: broken on purpose, n=7"  # papermill counts its injected-parameters cell
    run = client.get_run(report["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["llmops_bench.error"] == report["error"]
    assert {a.path for a in client.list_artifacts(report["run_id"], "executed")} == {"executed/broken.ipynb", "executed/broken.html"}


def _run_ids(client, experiment: str) -> list[str]:
    found = client.get_experiment_by_name(experiment)
    return sorted(r.info.run_id for r in client.search_runs([found.experiment_id], max_results=5000)) if found else []


@pytest.mark.parametrize("argv, message", [
    (["-p", "modles", "bench/lead"], "Unknown parameter 'modles' for qa.ipynb (did you mean 'models'?)"),
    (["-p", "limit", "four"], "Parameter 'limit' of qa.ipynb must be int, got 'four'"),
    (["-p", "min_pass_rate", "high"], "Parameter 'min_pass_rate' of qa.ipynb must be float, got 'high'"),
    (["-p", "repeats", "0"], "Parameter of qa.ipynb: repeats must be a whole number ≥ 1, got 0"),               # what evaluate would refuse
    (["-p", "models", "bench/lead,bench/oracle"], "Unknown offline model 'bench/oracle'"),
])
def test_a_bad_parameter_is_exit_2_naming_it(root, client, argv, message):
    before = _run_ids(client, "llmops-bench-jobs")
    done = cli(root, "job", "run", str(QA), *argv)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert _run_ids(client, "llmops-bench-jobs") == before   # no run of any kind was made
    with pytest.raises(LlmopsBenchError, match="must be int"):
        jobs.run(QA, {"limit": "four"}, settings=load_settings(root))


def test_a_sweep_of_4_with_2_workers(settings, client):
    table = jobs.sweep(QA, {"models": ["bench/lead", "bench/extractive"], "limit": [2, 3]}, workers=2, gates=["error_rate<=0"],
                       experiment="sweep", settings=settings)
    assert len(table) == 4 and table.status.eq("FINISHED").all() and table.passed.all(), table.to_string()
    assert table[["param.models", "param.limit"]].values.tolist() == [["bench/lead", 2], ["bench/lead", 3], ["bench/extractive", 2], ["bench/extractive", 3]]
    assert {"score.contains.min", "pass_rate.min", "gates_passed"} <= set(table.columns)
    assert table.loc[table["param.models"] == "bench/lead", "score.contains.max"].eq(0).all()   # lead answers with the instruction
    exp = client.get_experiment_by_name("sweep").experiment_id
    runs = client.search_runs([exp], f"tags.`{tracking.KIND_TAG}` = 'job'")
    assert sorted(r.info.run_id for r in runs) == sorted(table.run_id) and len({r.data.tags["llmops_bench.sweep"] for r in runs}) == 1


def test_rerun_reproduces_with_the_cache_and_reports_changes_per_case(qa_job, root, settings, client):
    again = jobs.rerun(qa_job.run_id, settings=settings)
    assert again.reproduced and len(again.differences) == 0, again
    new = client.get_run(again.job.run_id)
    assert new.data.tags["llmops_bench.rerun_of"] == qa_job.run_id and new.data.tags["llmops_bench.reproduced"] == "true"
    assert new.data.params["notebook_hash"] == client.get_run(qa_job.run_id).data.params["notebook_hash"]
    table = tracking.read_evaluation(again.job.evaluations[0], settings)[0]
    assert table.cached.all()                      # the same calls, answered from the cache: nothing sent
    # a model whose answer changed since: tamper with one cached answer, then re-run through the CLI
    first = tracking.read_evaluation(qa_job.evaluations[0], settings)[0].iloc[0]
    key = content_hash({"model": first["model"], "params": json.loads(first["model_params"]), "messages": json.loads(first["messages"]),
                        "repeat": int(first["repeat"])}, 32)   # the runner's cache key of that call
    db = sqlite3.connect(root/".llmops-bench"/"responses.sqlite")
    (value,) = db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
    db.execute("UPDATE responses SET value = ? WHERE key = ?", (json.dumps({**json.loads(value), "output": "a changed answer"}), key))
    db.commit(); db.close()
    done = cli(root, "job", "rerun", qa_job.run_id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert not report["reproduced"]
    changed = [d for d in report["differences"] if d["column"] == "output"]
    assert len(changed) == 1 and changed[0]["after"] == "a changed answer" and changed[0]["case_id"] == first["case_id"]
    # without the cache every call is sent again; the offline models answer as they did the first time
    fresh = jobs.rerun(qa_job.run_id, cache=False, settings=settings)
    assert fresh.reproduced, fresh
    assert not tracking.read_evaluation(fresh.job.evaluations[0], settings)[0].cached.any()


def test_a_sweep_on_a_cluster_without_dask_says_what_to_install(root):
    # an environment without the team extra: distributed cannot be imported
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from llmops_bench import jobs\n"
            f"jobs.sweep({str(QA)!r}, {{'limit': [1, 2]}}, cluster='local')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "LLMOPS_BENCH_ROOT": str(root)})
    assert done.returncode != 0 and "ConfigError: cluster= needs dask.distributed: pip install 'llmops-bench[team]'" in done.stderr, done.stderr
