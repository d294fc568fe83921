"""Sweeps on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1 (`dask scheduler`, `dask worker`, each in
its own process group), a sweep of 8 jobs, and one worker killed (SIGKILL, nanny and all) while its job is running. Dask runs
the lost task again on the other worker; the task's key on its job run makes the cut-off attempt go away, so MLflow ends with
exactly 8 job runs, one per job, each with one evaluation.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path


from llmops_bench import jobs, tracking
from llmops_bench.core import load_settings

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT/"nbs"/"evals"/"qa.ipynb"


def _kill_mid_job(address: str, victim: subprocess.Popen, victim_name: str, settings, experiment: str, state: dict) -> None:
    "Once at least 2 jobs finished, SIGKILL the victim worker's whole process group 2 s into a job it is running (its job run exists)."
    from distributed import Client
    client = tracking.mlflow_client(settings)
    with Client(address, timeout=30) as dask:
        while not state.get("stop"):
            time.sleep(0.5)
            exp = client.get_experiment_by_name(experiment)
            if exp is None: continue
            runs = {r.data.tags.get(tracking.JOB_KEY_TAG): r for r in client.search_runs([exp.experiment_id], "tags.`llmops_bench.kind` = 'job'")}
            if sum(r.info.status == "FINISHED" for r in runs.values()) < 2: continue
            names = {a: w["name"] for a, w in dask.scheduler_info()["workers"].items()}
            mine = [k for a, keys in dask.processing().items() if names.get(a) == victim_name for k in keys]
            for key in mine:   # the victim's task whose job run is RUNNING and at least 2 s old: it is mid-job (a job takes ~15 s here)
                run = runs.get(str(key).removeprefix("llmops-bench-job-"))
                if run is not None and run.info.status == "RUNNING" and time.time() * 1000 - run.info.start_time > 2000:
                    os.killpg(os.getpgid(victim.pid), signal.SIGKILL)
                    state["killed"] = run.data.tags[tracking.JOB_KEY_TAG]
                    return


def test_a_sweep_of_8_jobs_survives_a_worker_killed_mid_run(cluster, tmp_path):
    root = tmp_path/"project"; root.mkdir()
    settings = load_settings(root)
    experiment = "dask-sweep"
    state: dict = {}
    killer = threading.Thread(target=_kill_mid_job, args=(cluster["address"], cluster["workers"]["w1"], "w1", settings, experiment, state),
                              daemon=True)
    killer.start()
    try:
        table = jobs.sweep(QA, {"models": ["bench/extractive"], "limit": [1, 2, 3, 4, 5, 6, 7, 8]}, cluster=cluster["address"],
                           experiment=experiment, settings=settings)
    finally:
        state["stop"] = True
        killer.join(timeout=60)
    assert "killed" in state, "the worker was never killed mid-job: the test did not test anything"
    print(f"\nsweep on Dask: {len(table)} jobs, worker w1 killed during job {state['killed']}; statuses {table.status.value_counts().to_dict()}")

    assert len(table) == 8 and (table.status == "FINISHED").all(), table[["param.limit", "status", "error"]]
    client = tracking.mlflow_client(settings)
    exp = client.get_experiment_by_name(experiment).experiment_id
    job_runs = client.search_runs([exp], "tags.`llmops_bench.kind` = 'job'")
    keys = [r.data.tags[tracking.JOB_KEY_TAG] for r in job_runs]
    assert len(job_runs) == 8 and len(set(keys)) == 8, keys                       # 8 job runs, no duplicates
    assert sorted(table.run_id) == sorted(r.info.run_id for r in job_runs)       # the table reports exactly those
    assert all(r.info.status == "FINISHED" for r in job_runs)
    limits = sorted(int(r.data.params["param.limit"]) for r in job_runs)
    assert limits == list(range(1, 9))
    evaluations = client.search_runs([exp], "tags.`llmops_bench.kind` = 'evaluation'")
    assert len(evaluations) == 8 and {e.data.tags["mlflow.parentRunId"] for e in evaluations} == set(table.run_id)
    # the attempt the kill cut off is gone from the experiment: ended KILLED and deleted; its job ran again under the same key
    from mlflow.entities import ViewType
    cut = client.search_runs([exp], "tags.`llmops_bench.kind` = 'job'", run_view_type=ViewType.DELETED_ONLY)
    assert [(r.info.status, r.data.tags[tracking.JOB_KEY_TAG]) for r in cut] == [("KILLED", state["killed"])]
    assert state["killed"] in keys
