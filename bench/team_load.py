"""Load on a team's MLflow server: N processes at once, each running evaluation jobs that log to it; then every run and
artifact is checked, and the runs logged per minute are printed.

    python bench/team_load.py [--processes 8] [--jobs 2] [--limit 4] [--url URL] [--evaluations]

Without --url it starts its own server the way a team would (tests/team_server.py: a private PostgreSQL cluster and
`llmops-bench server` with the basic-auth app on 127.0.0.1) and logs as a user it creates; with --url it logs to that server
with MLFLOW_TRACKING_USERNAME/PASSWORD from the environment. Each process is `python bench/team_load.py --worker`, which runs
its jobs one after another (`lb.jobs.run` on nbs/evals/qa.ipynb with the offline bench/extractive model: a papermill kernel,
an evaluation, a job run with its executed notebook). Each process has its own project root (own response cache), so the
processes share nothing but the server. `--evaluations` runs plain `lb.evaluate` calls instead of jobs (no kernel to start):
what the server takes when the clients are not the bottleneck. Figures are printed, never asserted: this machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # the repository root: tests/ and bench/
QA = ROOT/"nbs"/"evals"/"qa.ipynb"
JOB_ARTIFACTS = {"executed/qa.ipynb", "executed/qa.html", "notebook/qa.ipynb", "parameters.json", "settings.json"}
EVALUATION_ARTIFACTS = {"results.json", "summary.json", "spec.json", "cases.html", "results.parquet"}


def worker(jobs: int, experiment: str, limit: int, evaluations: bool = False) -> list[dict]:
    "Run `jobs` jobs (or, with `evaluations`, plain evaluations: no kernel) one after another in this process; their reports as data."
    import llmops_bench as lb
    if evaluations:
        from llmops_bench.cli import demo_dataset_path
        import pandas as pd
        data = pd.read_csv(demo_dataset_path(), dtype=str, keep_default_na=False).head(limit)
        prompt = lb.Prompt("qa", "Answer using only the context.\nContext: {{context}}\nQuestion: {{question}}")
        runs = [lb.evaluate(prompt, ["bench/extractive"], data, scorers=[lb.scorers.contains()], experiment=experiment, progress=False,
                            cache=False, seed=i) for i in range(jobs)]
        return [{"run_id": ev.run_id, "status": "FINISHED" if ev.run_id else "UNLOGGED"} for ev in runs]
    return [lb.jobs.run(QA, {"models": "bench/extractive", "limit": limit, "experiment": experiment}).to_dict() for _ in range(jobs)]


def load(env: dict[str, str], processes: int = 8, jobs: int = 2, limit: int = 4, experiment: str | None = None,
         evaluations: bool = False) -> dict:
    "Start `processes` worker processes at once with `env` (server and credentials); wait for all; what they did and how fast."
    experiment = experiment or f"load-{int(time.time())}"
    roots = [Path(tempfile.mkdtemp(prefix=f"load-{i}-")) for i in range(processes)]
    base = {**os.environ, **env}
    base.pop("LLMOPS_BENCH_JOB_RUN_ID", None)
    began = time.monotonic()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--jobs", str(jobs), "--limit", str(limit), "--experiment", experiment, *(["--evaluations"] if evaluations else [])],
                              env={**base, "LLMOPS_BENCH_ROOT": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for r in roots]
    reports, errors = [], []
    for p in procs:
        out, err = p.communicate()
        if p.returncode: errors.append(f"worker exited {p.returncode}: {err[-2000:]}")
        else: reports += json.loads(out.strip().splitlines()[-1])
    seconds = time.monotonic() - began
    return {"experiment": experiment, "processes": processes, "jobs": len(reports), "errors": errors, "seconds": seconds,
            "reports": reports}


def check(result: dict) -> dict:
    "Read everything back from the server: every job run FINISHED with its artifacts, each with its evaluation and variant runs."
    from llmops_bench import tracking
    client = tracking.mlflow_client()
    exp = client.get_experiment_by_name(result["experiment"])
    runs = client.search_runs([exp.experiment_id], max_results=5000) if exp else []
    by_kind: dict[str, list] = {}
    for r in runs: by_kind.setdefault(r.data.tags.get(tracking.KIND_TAG), []).append(r)
    problems = []
    for r in by_kind.get("job", []):
        if r.info.status != "FINISHED": problems.append(f"job {r.info.run_id} is {r.info.status}")
        arts = {a.path for d in ("", "executed", "notebook") for a in client.list_artifacts(r.info.run_id, d or None)}
        if missing := JOB_ARTIFACTS - arts: problems.append(f"job {r.info.run_id} lacks {sorted(missing)}")
    for r in by_kind.get("evaluation", []):
        if missing := EVALUATION_ARTIFACTS - {a.path for a in client.list_artifacts(r.info.run_id)}:
            problems.append(f"evaluation {r.info.run_id} lacks {sorted(missing)}")
    reported = {rep["run_id"] for rep in result["reports"]}
    if lost := reported - {r.info.run_id for r in runs}: problems.append(f"{len(lost)} reported runs are not on the server")
    minutes = result["seconds"] / 60
    return {"job_runs": len(by_kind.get("job", [])), "evaluation_runs": len(by_kind.get("evaluation", [])),
            "variant_runs": len(by_kind.get("variant", [])), "runs": len(runs), "problems": problems,
            "job_runs_per_minute": len(by_kind.get("job", [])) / minutes, "runs_per_minute": len(runs) / minutes}


def report(result: dict, checked: dict) -> str:
    what = (f"{checked['job_runs']} job runs" if checked["job_runs"] else f"{checked['evaluation_runs']} evaluations (no kernel)")
    return (f"{result['processes']} processes, {what}, {checked['runs']} MLflow runs (jobs, evaluations, variants) in {result['seconds']:.1f} s: "
            f"{checked['job_runs_per_minute']:.1f} job runs/minute, {checked['runs_per_minute']:.1f} MLflow runs/minute; "
            f"{len(checked['problems'])} problems, {len(result['errors'])} failed workers")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="jobs per process, one after another")
    ap.add_argument("--limit", type=int, default=4, help="cases per evaluation")
    ap.add_argument("--url", help="a running team server (credentials from the environment)")
    ap.add_argument("--experiment")
    ap.add_argument("--evaluations", action="store_true", help="plain evaluations instead of jobs: the server's share, without kernels")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.jobs, a.experiment, a.limit, a.evaluations), default=str))
        return
    if a.url:
        os.environ["MLFLOW_TRACKING_URI"] = a.url
        result = load({"MLFLOW_TRACKING_URI": a.url}, a.processes, a.jobs, a.limit, a.experiment, a.evaluations)
        print(report(result, check(result)))
        return
    from tests.team_server import TeamServerProcess, _env
    with TeamServerProcess(tempfile.mkdtemp(prefix="team-load-"), workers=2) as team:
        print(f"server ready in {team.startup_s:.1f} s at {team.url}", flush=True)
        team.add_user("loader")
        with _env(team.client_env("loader")):
            result = load(team.client_env("loader"), a.processes, a.jobs, a.limit, a.experiment, a.evaluations)
            checked = check(result)
        print(report(result, checked))
        for p in checked["problems"][:10] + result["errors"][:3]: print("  -", p)


if __name__ == "__main__":
    main()
