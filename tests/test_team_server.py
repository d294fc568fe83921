"""A team's MLflow server, for real: Debian's PostgreSQL in a private cluster, `llmops-bench server` (the basic-auth app,
artifacts served through the server) on 127.0.0.1, two users with one experiment each, logging an evaluation and a job
through it; what the other user may not do; no credentials; a restart; eight processes logging jobs at once.

One PostgreSQL cluster and one server for the whole module (the server takes ~10-20 s to start here); the tests run in
order and later ones read what earlier ones logged. The server's default permission is NO_PERMISSIONS: an experiment is
private to its creator (who gets MANAGE) and to those granted a permission on it.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

import llmops_bench as lb
from llmops_bench import tracking
from llmops_bench.core import load_settings
from llmops_bench.evaluation import UnloggedWarning
from tests.postgres_server import postgres_bin
from tests.team_server import TeamServerProcess, _env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import team_load   # noqa: E402  (the load measurement lives in bench/, run by hand too)

QA = ROOT/"nbs"/"evals"/"qa.ipynb"
DATA = ROOT/"llmops_bench"/"data"/"demo_qa.csv"
PROMPT = lb.Prompt("qa", "Answer from the context.\nContext: {{context}}\nQuestion: {{question}}")

if postgres_bin() is None:
    pytest.fail("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin): apt-get install postgresql "
                "(.ci/run does this on a fresh machine)", pytrace=False)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    with TeamServerProcess(tmp_path_factory.mktemp("team"), default_permission="NO_PERMISSIONS", workers=2) as server:
        server.add_user("alice"); server.add_user("bob")
        yield server


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("project")


@pytest.fixture
def as_user(team, root, monkeypatch):
    "Act as a user (or None: no credentials) against the team server, from a clean environment."
    for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", tracking.JOB_RUN_ENV):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LLMOPS_BENCH_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
    def act(user: str | None):
        for k, v in team.client_env(user).items(): monkeypatch.setenv(k, v)
        if user is None:
            for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"): monkeypatch.delenv(k, raising=False)
        return load_settings(root)
    return act


def evaluate(settings, experiment: str):
    return lb.evaluate(PROMPT, ["bench/extractive"], DATA, scorers=[lb.scorers.contains()], experiment=experiment, progress=False,
                       settings=settings)


def test_each_user_logs_an_evaluation_and_a_job_to_their_own_experiment(team, as_user):
    for user in ("alice", "bob"):
        settings = as_user(user)
        ev = evaluate(settings, f"{user}-qa")
        assert ev.run_id and ev.unlogged is None, ev.log_error
        results, spec, _ = tracking.read_evaluation(ev.run_id, settings)   # results.parquet comes back through the server
        assert len(results) == 12 and spec["dataset"]["size"] == 12
    settings = as_user("alice")
    job = lb.jobs.run(QA, {"models": "bench/extractive", "limit": 4, "experiment": "alice-qa"}, gates=["error_rate<=0"], settings=settings)
    assert job.passed and len(job.evaluations) == 1, job
    client = tracking.mlflow_client(settings)
    arts = {a.path for d in ("executed", "notebook") for a in client.list_artifacts(job.run_id, d)}
    assert {"executed/qa.ipynb", "executed/qa.html", "notebook/qa.ipynb"} <= arts
    listed = tracking.list_runs("alice-qa", settings)
    assert set(listed.kind) == {"evaluation", "variant", "job"}
    # an evaluation records who logged it: the account the server knows (from the environment), not the machine's user
    assert client.get_run(job.evaluations[0]).data.tags["llmops_bench.user"] == "alice"


def test_the_other_user_can_neither_read_nor_write_a_private_experiment(team, as_user):
    settings = as_user("bob")
    with pytest.raises(tracking.AccessDenied) as denied:
        tracking.list_runs("alice-qa", settings)
    message = str(denied.value)
    assert "User 'bob' may not read experiment 'alice-qa'" in message and "READ permission" in message, message
    # an evaluation into alice's experiment runs, is refused by the server, and is kept locally: nothing is lost
    with pytest.warns(UnloggedWarning, match="may not read experiment 'alice-qa'"):
        ev = evaluate(settings, "alice-qa")
    assert ev.unlogged is not None and (ev.unlogged/"results.parquet").is_file()
    # granted READ, bob reads alice's runs but still may not write to them
    as_user("alice")
    eid = tracking.mlflow_client(load_settings()).get_experiment_by_name("alice-qa").experiment_id
    team.grant("bob", eid, "READ")
    settings = as_user("bob")
    assert len(tracking.list_runs("alice-qa", settings))
    with pytest.raises(tracking.AccessDenied) as denied:
        tracking.start_job_run("alice-qa", QA, "nbs/evals/qa.ipynb", "0" * 16, {"limit": 1}, settings=settings)
    message = str(denied.value)
    assert f"User 'bob' may not write to experiment 'alice-qa' (id {eid})" in message and "needs the EDIT permission" in message, message
    assert "grant_user_permission(username='bob'" in message
    with pytest.warns(UnloggedWarning, match="needs the EDIT permission") as kept:
        evaluate(settings, "alice-qa")
    assert "grant_user_permission(username='bob'" in str(next(w.message for w in kept if w.category is UnloggedWarning))   # the refusal reaches the user whole, with what to run
    # and alice's experiment holds no run of bob's: her evaluation and her job's
    as_user("alice")
    logged = tracking.mlflow_client(load_settings()).search_runs([eid], "tags.`llmops_bench.kind` = 'evaluation'")
    assert [r.data.tags["llmops_bench.user"] for r in logged] == ["alice", "alice"]


def test_a_request_without_credentials_or_with_a_wrong_password_is_rejected(team, as_user, monkeypatch):
    settings = as_user(None)
    with pytest.raises(tracking.AccessDenied, match="no credentials are set: export MLFLOW_TRACKING_USERNAME"):
        tracking.list_runs("alice-qa", settings)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        direct.open(f"{team.url}/api/2.0/mlflow/experiments/search?max_results=5", timeout=10)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as refused:   # artifacts are served through the same gate
        direct.open(f"{team.url}/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/results.json", timeout=10)
    assert refused.value.code == 401
    settings = as_user("bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-bobs-password")
    with pytest.raises(tracking.AccessDenied, match="did not accept the credentials of user 'bob'"):
        tracking.list_runs("bob-qa", settings)
    # a password in the tracking URI is refused before anything is sent or recorded
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url.replace("http://", "http://bob:secret@"))
    with pytest.raises(tracking.StoreError, match="carries a password") as e:
        tracking.list_runs("bob-qa", load_settings())
    assert "secret" not in str(e.value).replace("carries a password", "")


def _snapshot(settings) -> dict:
    client = tracking.mlflow_client(settings)
    eid = client.get_experiment_by_name("alice-qa").experiment_id
    return {r.info.run_id: (r.info.status, dict(r.data.params), dict(r.data.metrics), sorted(a.path for a in client.list_artifacts(r.info.run_id)))
            for r in client.search_runs([eid], max_results=1000)}


def test_a_restart_of_the_server_loses_nothing(team, as_user):
    settings = as_user("alice")
    before = _snapshot(settings)
    assert len(before) == 5   # her evaluation with its variant run; her job with its evaluation and variant run
    team.stop()
    team.start()
    assert _snapshot(settings) == before
    ev_id = next(r for r, (status, params, _, arts) in before.items() if "results.parquet" in arts)
    results, _, _ = tracking.read_evaluation(ev_id, settings)   # the artifacts themselves, not only their names
    assert len(results)
    # accounts and permissions survived too: bob still reads alice's experiment (granted) and still may not write to it
    settings = as_user("bob")
    assert len(tracking.list_runs("alice-qa", settings))
    with pytest.raises(tracking.AccessDenied, match="EDIT"):
        tracking.start_job_run("alice-qa", QA, "nbs/evals/qa.ipynb", "0" * 16, {}, settings=settings)


def test_an_experiment_found_before_its_owner_permission_is_written_is_asked_again(team, as_user):
    """The server writes a new experiment's MANAGE permission for its creator in a second step; another process of that user can
    find the experiment in between and be refused. Here that moment is made long: the admin creates the experiment and grants
    alice EDIT 0.3 s later, from another thread, while alice's process is already looking."""
    settings = as_user("alice")
    from mlflow import MlflowClient
    with team.as_admin(): eid = MlflowClient(team.url).create_experiment("granted-late")
    def grant_later():
        time.sleep(0.3)
        body = json.dumps({"username": "alice", "resource_type": "experiment", "resource_id": eid, "permission": "EDIT"}).encode()
        auth = base64.b64encode(f"admin:{team.passwords['admin']}".encode()).decode()
        request = urllib.request.Request(f"{team.url}/api/3.0/mlflow/users/permissions/grant", body, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
        granted.append(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10).status)
    granted: list[int] = []
    granter = threading.Thread(target=grant_later); granter.start()
    try: assert tracking.ensure_experiment("granted-late", settings) == eid
    finally: granter.join()
    assert granted == [200]
    # a refusal that lasts is still raised, in words
    settings = as_user("bob")
    with pytest.raises(tracking.AccessDenied, match="User 'bob' may not read experiment 'granted-late'"):
        tracking.ensure_experiment("granted-late", settings)


def test_eight_processes_logging_jobs_at_once_lose_nothing(team, as_user, capsys):
    as_user("alice")
    result = team_load.load(team.client_env("alice"), processes=8, jobs=1, limit=2, experiment="alice-load")
    assert not result["errors"], result["errors"]
    checked = team_load.check(result)
    with capsys.disabled():
        print(f"\nteam server load: {team_load.report(result, checked)}")
    assert checked["problems"] == [] and checked["job_runs"] == 8 and checked["evaluation_runs"] == 8 and checked["variant_runs"] == 8
    assert all(r["status"] == "FINISHED" for r in result["reports"])
