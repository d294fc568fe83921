"""MLflow tracking against real stores: the embedded sqlite store and a real `mlflow server` process on 127.0.0.1.

Everything logged is read back through `MlflowClient` (runs, params, metrics, tags, inputs, artifacts as files), never
through llmops_bench's internals. The evaluation itself uses the offline `bench/` models (real algorithms, zero cost)
or the local fake OpenAI server, so nothing here needs a network or a key.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

import llmops_bench as lb
from llmops_bench.cli import DEMO_PROMPTS, demo_dataset_path

PARENT_ARTIFACTS = {"results.json", "summary.json", "spec.json", "results.parquet",
                    "plots/score_by_variant.png", "plots/cost_vs_quality.png", "plots/latency.png"}
CHILD_PARAMS = {"prompt.name", "prompt.version", "prompt.hash", "prompt.template", "model", "model.params",
                "dataset.digest", "dataset.size", "repeats", "scorers"}
CHILD_METRICS = {"n", "error_rate", "latency_p50_s", "latency_p95_s", "tokens", "cost_usd", "saved_usd", "cache_hit_rate",
                 "score.contains"}
MODELS = ["bench/lead", "bench/extractive"]
ROW_KEY = ["variant", "case_id", "repeat"]
# what an evaluation's rows say, whoever ran them and whether they came from the cache
SAME_ROWS = [*ROW_KEY, "prompt_name", "prompt_version", "prompt_hash", "model", "model_params", "messages", "output", "error",
             "error_type", "prompt_tokens", "completion_tokens", "score.contains"]
SENTINELS = {"OPENAI_API_KEY": "sk-SENTINEL-openai-5f1d2c", "ANTHROPIC_API_KEY": "sk-ant-SENTINEL-anthropic-9a7e3b"}
MODEL_KEY_SENTINEL = "sk-SENTINEL-model-setting-44c0aa"


@dataclass
class Store:
    "Where one family of tests logs: an embedded sqlite store under `root`, or the session's MLflow server."
    kind: str
    root: Path            # the project root: settings, the response cache, the unlogged folder (and mlflow/ when embedded)
    cwd: Path             # the working directory during the tests: nothing may be written there
    settings: lb.Settings
    uri: str              # the tracking URI the client reads back from
    files: list[Path]     # every place the store keeps data: grepped for secrets

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri)


def make_store(kind: str, base: Path, server=None) -> Store:
    root, cwd = base/"root", base/"cwd"
    root.mkdir(parents=True)
    cwd.mkdir()
    # a git repository, so the evaluation has a commit to record
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=root, check=True)
    if kind == "server":
        # the documented place for a team server: settings.ini at the project root (read by every call without settings=)
        (root/"settings.ini").write_text(f"[llmops-bench]\ntracking_uri = {server.url}\n")
        return Store(kind, root, cwd, lb.Settings(root=root, tracking_uri=server.url), server.url,
                     [root, server.directory])
    return Store(kind, root, cwd, lb.Settings(root=root), f"sqlite:///{(root/'mlflow'/'mlflow.db').as_posix()}", [root])


@pytest.fixture(scope="module", params=["embedded", "server"])
def store(request, tmp_path_factory):
    """A fresh project root per store kind, with LLMOPS_BENCH_ROOT pointing at it, no MLFLOW_TRACKING_URI, and an empty
    working directory elsewhere (a relative sqlite URI anywhere would create a database there)."""
    server = request.getfixturevalue("mlflow_server") if request.param == "server" else None
    s = make_store(request.param, tmp_path_factory.mktemp(f"tracking-{request.param}"), server)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("LLMOPS_BENCH_ROOT", str(s.root))
        mp.chdir(s.cwd)
        yield s


@dataclass
class Logged:
    store: Store
    experiment: str
    results: lb.Results
    original: pd.DataFrame     # a copy of the results table as evaluate() returned it
    spec: dict
    registered: lb.Prompt
    env_after: str | None      # MLFLOW_TRACKING_URI right after evaluate()
    warnings: list[str]        # what evaluate() warned about


@pytest.fixture(scope="module")
def logged(store) -> Logged:
    "One evaluation of 2 prompts (one from the prompt registry) × 2 offline models × 12 cases, logged to `store`."
    experiment = f"tracking-{uuid.uuid4().hex[:8]}"
    registered = lb.register_prompt(lb.Prompt(f"qa-reg-{uuid.uuid4().hex[:6]}", DEMO_PROMPTS[1]))
    prompts = [lb.Prompt("qa", DEMO_PROMPTS[0]), registered]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = lb.evaluate(prompts, MODELS, demo_dataset_path(), scorers=[lb.scorers.contains()], experiment=experiment,
                              settings=store.settings, progress=False)
    return Logged(store, experiment, results, results.results.copy(), copy.deepcopy(results.spec), registered,
                  os.environ.get("MLFLOW_TRACKING_URI"), [str(w.message) for w in caught])


def children(client: MlflowClient, run) -> list:
    return client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")


def table_rows(client: MlflowClient, run_id: str, path: str = "results.json") -> pd.DataFrame:
    "A table logged with mlflow.log_table, read from the artifact file itself (so appended duplicates would show)."
    with tempfile.TemporaryDirectory() as d:
        data = json.loads(Path(client.download_artifacts(run_id, path, d)).read_text())
    return pd.DataFrame(data["data"], columns=data["columns"])


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for a in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, a.path) if a.is_dir else {a.path}
    return out


# --- (a) structure ---------------------------------------------------------------------------------------------------

def test_evaluation_is_one_parent_run_with_params_metrics_and_artifacts(logged):
    client, r, spec = logged.store.client, logged.results, logged.spec
    assert not [w for w in logged.warnings if "could not be logged" in w]
    assert r.run_id, "evaluate(log=True) returned no run id"
    parent = client.get_run(r.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["llmops_bench.kind"] == "evaluation"
    assert "mlflow.parentRunId" not in parent.data.tags
    assert client.get_experiment(parent.info.experiment_id).name == logged.experiment

    p = parent.data.params
    assert p["dataset.source"].endswith("demo_qa.csv")
    assert p["dataset.digest"] == spec["dataset"]["digest"]
    assert p["dataset.size"] == "12"
    assert "contains" in p["scorers"]
    assert p["repeats"] == "1"
    assert any(k.startswith("engine.") for k in p), sorted(p)
    assert p.get("version.mlflow") == mlflow.__version__, sorted(p)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=logged.store.root, capture_output=True, text=True).stdout.strip()
    assert p.get("git.commit", "").startswith(head), (p.get("git.commit"), head)

    m = parent.data.metrics
    assert m["calls"] == 48 and m["error_rate"] == 0.0
    assert m["cost_usd"] == 0.0   # bench/ models cost nothing, and say so

    assert PARENT_ARTIFACTS <= artifact_paths(client, r.run_id), artifact_paths(client, r.run_id)
    with tempfile.TemporaryDirectory() as d:
        for png in (a for a in PARENT_ARTIFACTS if a.endswith(".png")):
            data = Path(client.download_artifacts(r.run_id, png, d)).read_bytes()
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, png
        assert json.loads(Path(client.download_artifacts(r.run_id, "spec.json", d)).read_text())["dataset"]["digest"] == spec["dataset"]["digest"]
    # the results table on the parent holds every row once; the summary one row per variant
    table = table_rows(client, r.run_id)
    assert len(table) == 48 and not table.duplicated(ROW_KEY).any()
    assert set(table.variant) == set(r.variants)
    assert len(table_rows(client, r.run_id, "summary.json")) == 4


def test_the_parent_has_a_case_by_case_page_the_ui_can_show(logged):
    "cases.html: cases × variants with each output and its scores, escaped, on the embedded store and through a real server."
    client, r = logged.store.client, logged.results
    with tempfile.TemporaryDirectory() as d:
        page = Path(client.download_artifacts(r.run_id, "cases.html", d)).read_text()
    assert page.count("<tr>") == 1 + 12 and all(v.replace("·", "&middot;") in page or v in page for v in r.variants)
    assert r.results.output.iloc[0][:30].replace("'", "&#x27;") in page and "contains " in page
    assert "<script" not in page.lower()


def test_one_child_run_per_variant_with_its_own_rows(logged):
    client, r = logged.store.client, logged.results
    parent = client.get_run(r.run_id)
    kids = children(client, parent)
    assert sorted(k.data.tags["llmops_bench.variant"] for k in kids) == sorted(r.variants)
    summary = r.summary().set_index("variant")
    for kid in kids:
        variant = kid.data.tags["llmops_bench.variant"]
        rows = r.results[r.results.variant == variant]
        assert kid.data.tags["llmops_bench.kind"] == "variant" and kid.data.tags["mlflow.parentRunId"] == r.run_id
        assert kid.info.status == "FINISHED"
        p, m = kid.data.params, kid.data.metrics
        assert CHILD_PARAMS <= set(p), CHILD_PARAMS - set(p)
        assert (p["prompt.name"], p["prompt.version"], p["prompt.hash"], p["model"]) == \
            (rows.prompt_name.iloc[0], rows.prompt_version.iloc[0], rows.prompt_hash.iloc[0], rows.model.iloc[0])
        assert p["prompt.template"] in DEMO_PROMPTS
        assert p["dataset.digest"] == logged.spec["dataset"]["digest"] and p["dataset.size"] == "12" and p["repeats"] == "1"
        assert CHILD_METRICS <= set(m), CHILD_METRICS - set(m)
        s = summary.loc[variant]
        assert m["n"] == 12 == len(rows) and m["error_rate"] == 0.0 and m["cache_hit_rate"] == 0.0
        assert m["tokens"] == s["tokens"] == rows.prompt_tokens.sum() + rows.completion_tokens.sum()
        assert m["score.contains"] == pytest.approx(rows["score.contains"].mean())
        assert m["latency_p50_s"] == pytest.approx(s["latency_p50_s"]) and m["latency_p95_s"] == pytest.approx(s["latency_p95_s"])
        assert m["cost_usd"] == 0.0 and m["saved_usd"] == 0.0
        # its own rows, once each, in the same file name as the parent's table (the UI lines variants up by it)
        table = table_rows(client, kid.info.run_id)
        assert len(table) == len(rows) and set(table.variant) == {variant}
        assert sorted(table.case_id) == sorted(rows.case_id)


def test_the_dataset_is_a_run_input_of_parent_and_children(logged):
    client, r = logged.store.client, logged.results
    parent = client.get_run(r.run_id)
    for run in [parent, *(client.get_run(k.info.run_id) for k in children(client, parent))]:
        inputs = run.inputs.dataset_inputs
        assert len(inputs) == 1, (run.info.run_id, inputs)
        assert inputs[0].dataset.digest == logged.spec["dataset"]["digest"]
        schema = inputs[0].dataset.schema or ""
        assert "question" in schema and "context" in schema, schema


def test_runs_record_the_registered_prompt_they_used(logged):
    client, r, reg = logged.store.client, logged.results, logged.registered
    assert reg.version == "1" and reg.uri == f"prompts:/{reg.name}/1"
    # the registry's version is the prompt_version in the results table
    assert set(r.results.loc[r.results.prompt_name == reg.name, "prompt_version"]) == {"1"}
    kids = children(client, client.get_run(r.run_id))
    used = [k for k in kids if k.data.params["prompt.name"] == reg.name]
    other = [k for k in kids if k.data.params["prompt.name"] == "qa"]
    assert len(used) == 2 and len(other) == 2
    for kid in used:
        assert kid.data.params.get("prompt.uri") == reg.uri
        linked = json.loads(kid.data.tags.get("mlflow.linkedPrompts", "[]"))   # MLflow's own link: the UI's prompt view uses it
        assert {"name": reg.name, "version": "1"} in linked, kid.data.tags
    for kid in other:
        assert "prompt.uri" not in kid.data.params


def test_nothing_is_written_outside_the_store(logged):
    "A relative sqlite URI (MLflow's default, or a global store looked up behind the client's back) would land in the cwd."
    assert logged.env_after is None, f"evaluate() left MLFLOW_TRACKING_URI={logged.env_after!r} in the environment"
    assert sorted(p.name for p in logged.store.cwd.iterdir()) == []


# --- (b) round trip --------------------------------------------------------------------------------------------------

def test_load_rebuilds_the_exact_results(logged):
    assert logged.results.run_id, logged.warnings
    back = lb.load(logged.results.run_id, settings=logged.store.settings)
    assert back.run_id == logged.results.run_id
    pd.testing.assert_frame_equal(back.results, logged.original)   # same rows, order, values and dtypes
    assert back.spec == json.loads(json.dumps(logged.spec, default=str))
    pd.testing.assert_frame_equal(back.summary(), logged.results.summary())


def test_runs_lists_the_evaluation_and_its_variants(logged):
    table = lb.runs(logged.experiment, settings=logged.store.settings)
    assert {"run_id", "parent_run_id", "kind", "variant", "status", "start_time"} <= set(table.columns)
    ours = table[(table.run_id == logged.results.run_id) | (table.parent_run_id == logged.results.run_id)]
    assert len(ours) == 5
    assert sorted(ours.kind) == ["evaluation"] + ["variant"] * 4
    assert sorted(ours.variant.dropna()) == sorted(logged.results.variants)
    assert (ours.status == "FINISHED").all()
    assert "params.prompt.name" in table and "metrics.score.contains" in table and "metrics.calls" in table


# --- (e) the same results logged twice -------------------------------------------------------------------------------

def test_logging_the_same_results_again_returns_the_run_and_adds_no_row(logged):
    client, r = logged.store.client, logged.results
    exp = client.get_run(r.run_id).info.experiment_id
    before = {run.info.run_id: len(table_rows(client, run.info.run_id)) for run in client.search_runs([exp])}
    # a retry of the same object, then a copy of the same content (a resumed notebook, results read back from disk)
    assert lb.log(r, logged.experiment, settings=logged.store.settings) == r.run_id
    again = lb.Results(logged.original.copy(), copy.deepcopy(logged.spec))
    assert lb.log(again, logged.experiment, settings=logged.store.settings) == r.run_id
    assert again.run_id == r.run_id
    after = {run.info.run_id: len(table_rows(client, run.info.run_id)) for run in client.search_runs([exp])}
    assert after == before


# --- prompt registry -------------------------------------------------------------------------------------------------

def test_prompt_registry_round_trips_text_and_chat_and_registers_only_new_content(store):
    client, name = store.client, f"reg-{uuid.uuid4().hex[:8]}"
    first = lb.register_prompt(lb.Prompt("draft", "Answer in one word: {{question}}"), name=name)
    same = lb.register_prompt(lb.Prompt("another-local-name", "Answer in one word: {{question}}"), name=name)
    changed = lb.register_prompt(lb.Prompt("draft", "Answer in two words: {{question}}"), name=name)
    assert (first.version, same.version, changed.version) == ("1", "1", "2")
    assert (first.uri, changed.uri) == (f"prompts:/{name}/1", f"prompts:/{name}/2")
    assert len(client.search_prompt_versions(name)) == 2   # identical content made no new version

    back = lb.load_prompt(f"prompts:/{name}/1")
    assert (back.name, back.template, back.version, back.hash) == (name, "Answer in one word: {{question}}", "1", first.hash)
    client.set_prompt_alias(name, "production", 2)
    prod = lb.load_prompt(f"prompts:/{name}@production")
    assert (prod.template, prod.version) == ("Answer in two words: {{question}}", "2")

    chat = lb.Prompt("chat", [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Q: {{question}}"}])
    reg = lb.register_prompt(chat, name=f"{name}-chat")
    loaded = lb.load_prompt(reg.uri)
    assert loaded.template == chat.template and loaded.hash == chat.hash and loaded.version == "1"
    assert loaded.messages == chat.messages


# --- (c) secrets -----------------------------------------------------------------------------------------------------

def test_no_secret_reaches_the_store_the_artifacts_or_the_cache(store, fake_server, monkeypatch):
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    models = [lb.Model("openai/fake-a", api_base=fake_server.base_url, api_key=MODEL_KEY_SENTINEL),
              lb.Model("openai/fake-b", api_base=fake_server.base_url, api_key=MODEL_KEY_SENTINEL, temperature=0)]
    prompts = [lb.Prompt("qa", t) for t in DEMO_PROMPTS]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted", UserWarning)
        r = lb.evaluate(prompts, models, demo_dataset_path(), scorers=[lb.scorers.contains()], experiment=f"secrets-{uuid.uuid4().hex[:8]}",
                        settings=store.settings, progress=False)
    assert r.run_id and r.results.error.isna().all() and fake_server.stats()["completed"] == 48
    # the key was really used (the calls went out with it), so its absence below means something
    client = store.client
    kids = children(client, client.get_run(r.run_id))
    assert len(kids) == 4
    for kid in kids:   # the fake models are not in litellm's price map: their cost is unknown, so no cost metric at all
        assert "cost_usd" not in kid.data.metrics, kid.data.metrics
    assert "cost_usd" not in client.get_run(r.run_id).data.metrics

    files = [p for base in store.files for p in base.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in files) and any(p.name == "results.parquet" for p in files)
    assert any(p.name.endswith(("sqlite", ".db")) for p in files)
    leaks = [(str(p), s) for p in files for s in [*SENTINELS.values(), MODEL_KEY_SENTINEL] if s.encode() in p.read_bytes()]
    assert leaks == []


# --- (d) outage ------------------------------------------------------------------------------------------------------

def test_a_server_outage_loses_nothing_and_push_logs_it_later(mlflow_server, tmp_path, monkeypatch, capsys):
    from llmops_bench import cli
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    s = make_store("server", tmp_path, mlflow_server)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LLMOPS_BENCH_ROOT", str(s.root))
    monkeypatch.chdir(s.cwd)
    experiment = f"outage-{uuid.uuid4().hex[:8]}"
    prompts = [lb.Prompt("qa", t) for t in DEMO_PROMPTS]
    args = dict(scorers=[lb.scorers.contains()], experiment=experiment, settings=s.settings, progress=False)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted", UserWarning)
        before = lb.evaluate(prompts, MODELS, demo_dataset_path(), **args)
        assert before.run_id
        mlflow_server.stop()
        try:
            with pytest.warns(UserWarning, match="could not be logged") as caught:
                during = lb.evaluate(prompts, MODELS, demo_dataset_path(), **args)
        finally:
            mlflow_server.start()

    message = next(str(w.message) for w in caught if "could not be logged" in str(w.message))
    assert during.run_id is None
    saved = [p for p in (s.root/".llmops-bench"/"unlogged").iterdir() if p.is_dir()]
    assert len(saved) == 1 and f"saved in {saved[0]}" in message, (saved, message)
    # no result is lost: the same rows as the uninterrupted run (answered from the cache this time)
    pd.testing.assert_frame_equal(during.results[SAME_ROWS], before.results[SAME_ROWS])
    assert during.results.cached.all()

    capsys.readouterr()
    code = cli.main(["runs", "push", str(saved[0]), "--experiment", experiment])
    out, err = capsys.readouterr()
    assert code == 0, err
    client = s.client
    pushed_id = next((w for w in out.split() if len(w) == 32 and all(c in "0123456789abcdef" for c in w)), None)
    assert pushed_id, f"`runs push` printed no run id: {out!r}"
    pushed = client.get_run(pushed_id)
    assert pushed.data.tags["llmops_bench.kind"] == "evaluation" and pushed.info.status == "FINISHED"
    assert client.get_experiment(pushed.info.experiment_id).name == experiment
    table = table_rows(client, pushed_id)
    assert len(table) == len(during.results) and not table.duplicated(ROW_KEY).any()
    assert sorted(zip(table.variant, table.case_id)) == sorted(zip(during.results.variant, during.results.case_id))
    # the same runs as the uninterrupted evaluation: a parent and one child per variant, with their rows
    kids = children(client, pushed)
    assert sorted(k.data.tags["llmops_bench.variant"] for k in kids) == sorted(before.variants)
    assert all(len(table_rows(client, k.info.run_id)) == 12 for k in kids)
    pd.testing.assert_frame_equal(lb.load(pushed_id, settings=s.settings).results, lb.Results.load(saved[0]).results)
    # pushing again, or logging the saved folder from Python, finds the same run
    assert lb.log(lb.Results.load(saved[0]), experiment, settings=s.settings) == pushed_id
    assert len(table_rows(client, pushed_id)) == len(during.results)
