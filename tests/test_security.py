"""Security and input checks seen from outside, against the local OpenAI-compatible server (tests/fake_openai.py).

1. No secret is written anywhere: credentials in a model's `api_key`, in `extra_headers` and in the environment, echoed back by
   the server in answers (`leak-headers*`) and in error bodies (`always401*`, `leak-error*`), are found nowhere under the project
   root afterwards (every file read as bytes): not in the cache, the MLflow store and artifacts (tables, traces, specs), the folder
   an evaluation is kept in when the store is down, nor an executed job notebook. Answers are cached apart by credential.
2. The model policy holds on what a call really reaches (the provider an id resolves to, the endpoint) and on every call path:
   completions, LLM judges, embeddings, promptfoo's model-graded assertions. A refused call sends nothing (the server counts).
3. Bad engine arguments and inputs stop before anything is sent, naming the value: from the API, and exit 2 from `llmops-bench eval`
   with no MLflow run made. An over-long input is `too_large`, whether the server refuses it (413) or a limit does first.
4. `total_s` is the whole call's time, retries and waits included; `latency_s` the answering request's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import llmops_bench as lb
from llmops_bench import jobs, specs
from llmops_bench.core import ConfigError, DatasetError, LlmopsBenchError, ModelError, Settings, load_settings
from llmops_bench.providers import ProviderError
from llmops_bench.runner import ResponseCache
from tests.mlflow_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent/"llmops-bench"
PROMPT = lb.Prompt("q", "Question {{n}}: what is {{n}} plus one?")
TRANSPORTS = ["auto", "litellm"]

# three credentials, all marked: whatever part of one is written anywhere, the mark is found
SECRET_KEY = "sk-SENTINEL-given-7f3a9c01"       # a model's api_key
SECRET_HEADER = "hdr-SENTINEL-header-41b2e8"    # a value in its extra_headers
SECRET_ENV = "sk-SENTINEL-environ-9d8e1f55"     # OPENAI_API_KEY, for models that set no key
MARK = b"SENTINEL"


def cases(n: int) -> list[dict]:
    return [{"id": f"case-{i:04d}", "n": i} for i in range(n)]


def project(tmp_path: Path, monkeypatch, **settings) -> Settings:
    "A fresh project root with the embedded MLflow store (no MLFLOW_TRACKING_URI) and its own cache."
    root = tmp_path/"project"
    root.mkdir(exist_ok=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LLMOPS_BENCH_ROOT", str(root))
    return Settings(root=root, **settings)


def files_with(folder: Path, mark: bytes = MARK) -> list[str]:
    "Every file under `folder` whose bytes hold `mark` (grep -r, binary files included)."
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and mark in p.read_bytes())


def sent(server) -> tuple[int, int]:
    stats = server.stats()
    return stats["requests"], stats["embeddings"]


# --- 1. no secret is written ---------------------------------------------------------------------------------------------

def leaky_models(url: str) -> list[lb.Model]:
    "Models whose answers or errors quote every credential they were called with."
    given = {"api_key": SECRET_KEY, "extra_headers": {"X-Team-Token": SECRET_HEADER}}
    return [lb.Model("openai/leak-headers-given", api_base=url, **given),       # answer: every header (Authorization, X-Team-Token)
            lb.Model("openai/leak-headers-environ", api_base=url),              # the same, with the environment's key
            lb.Model("openai/always401-given", api_base=url, **given),          # 401 quoting the key
            lb.Model("openai/always401-environ", api_base=url),
            lb.Model("openai/leak-error-given", api_base=url, **given)]         # 400 quoting every header


JOB_NOTEBOOK = [
    ("code", "experiment = 'leaky-job'", ["parameters"]),
    ("code", textwrap.dedent("""\
        import os
        import llmops_bench as lb
        url = os.environ["LB_TEST_BASE_URL"]
        given = {"api_key": os.environ["LB_TEST_API_KEY"], "extra_headers": {"X-Team-Token": os.environ["LB_TEST_TEAM_TOKEN"]}}
        models = [lb.Model("openai/leak-headers-job", api_base=url, **given), lb.Model("openai/always401-job", api_base=url),
                  lb.Model("openai/leak-error-job", api_base=url, **given)]
        ev = lb.evaluate(lb.Prompt("q", "Question {{n}}?"), models, [{"id": "a", "n": 1}, {"id": "b", "n": 2}],
                         experiment=experiment, progress=False)
        lb.jobs.glue("run_id", ev.run_id)"""), []),
    ("code", "print(ev.results[['model', 'output', 'error']].to_string())\nev.results", []),
    ("code", "for row in ev.results.itertuples(): print(repr(row.output), repr(row.error))", []),
]


def write_notebook(path: Path, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source, tags in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_no_secret_is_written_anywhere(fake_server, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch)
    root = settings.root
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_ENV)
    url = fake_server.base_url
    judge = lb.scorers.llm_judge("Is the answer right?", model=lb.Model("openai/leak-headers-judge", api_base=url, api_key=SECRET_KEY,
                                                                     extra_headers={"X-Team-Token": SECRET_HEADER}))
    seen = []
    for transport in TRANSPORTS:   # each path to the server, each with a cache of its own under the project root
        s = Settings(root=root, transport=transport)
        ev = lb.evaluate(PROMPT, leaky_models(url), cases(2), scorers=[judge], experiment="leaky", trace=True, progress=False,
                         retries=0, cache=root/".llmops-bench"/f"{transport}.sqlite", settings=s)
        assert ev.run_id and ev.unlogged is None, ev.log_error
        seen.append(ev.results)

    # the store is down: the same evaluation is kept in a folder under the cache
    down = Settings(root=root, tracking_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.warns(lb.evaluation.UnloggedWarning):
        kept = lb.evaluate(PROMPT, leaky_models(url), cases(2), progress=False, retries=0, cache=False, settings=down)
    assert kept.unlogged is not None and kept.unlogged.is_relative_to(root) and (kept.unlogged/"results.parquet").is_file()

    # an evaluation notebook run as a job, its credentials from the environment
    monkeypatch.setenv("LB_TEST_BASE_URL", url)
    monkeypatch.setenv("LB_TEST_API_KEY", SECRET_KEY)
    monkeypatch.setenv("LB_TEST_TEAM_TOKEN", SECRET_HEADER)
    report = jobs.run(write_notebook(root/"leaky_job.ipynb", JOB_NOTEBOOK), settings=settings)
    assert report.status == "FINISHED", report.error
    executed = report.output.read_text()
    assert "Bearer ***" in executed and "Incorrect API key provided: ***" in executed, executed[:2000]

    # the secrets really came back from the server, and were scrubbed on the way in
    for table in seen + [kept.results]:
        out = table.set_index("model").output
        for name in ("openai/leak-headers-given", "openai/leak-headers-environ"):
            assert '"authorization": "bearer ***"' in out[name].iloc[0].lower(), out[name].iloc[0]
        assert '"x-team-token": "***"' in out["openai/leak-headers-given"].iloc[0].lower()   # litellm sends header names in lower case
        errors = table.set_index("model").error
        assert errors["openai/always401-given"].str.startswith("Incorrect API key provided: ***").all()
        assert errors["openai/always401-environ"].str.startswith("Incorrect API key provided: ***").all()
        assert errors["openai/leak-error-given"].str.lower().str.contains('"x-team-token": "***"', regex=False).all()
    judged = seen[0]
    assert judged["score_error"].notna().any() or judged["rationale.judge"].notna().any()   # the judge's reply was read, scrubbed

    # nothing under the project root holds any part of a secret: store, artifacts, traces, cache, kept folder, executed notebook
    for place in ("mlflow/mlflow.db", "mlflow/artifacts", ".llmops-bench/auto.sqlite", ".llmops-bench/unlogged", ".llmops-bench/jobs"):
        assert (root/place).exists(), place
    assert files_with(tmp_path) == []


def test_answers_are_cached_apart_by_credential(fake_server, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch)
    cache = tmp_path/"cache.sqlite"
    def with_key(key: str | None) -> pd.DataFrame:
        extra = {"api_key": key} if key else {}
        return lb.evaluate(PROMPT, lb.Model("openai/local", api_base=fake_server.base_url, **extra), cases(3), cache=cache,
                           log=False, progress=False, settings=settings).results

    assert not with_key("sk-first-0123456789").cached.any() and sent(fake_server) == (3, 0)
    assert not with_key("sk-second-0123456789").cached.any() and sent(fake_server) == (6, 0)    # another key: sent again
    assert with_key("sk-first-0123456789").cached.all() and sent(fake_server) == (6, 0)         # the first key: its answers
    assert len(ResponseCache(cache)) == 6
    # credentials from the environment count the same way
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-one-0123456789")
    assert not with_key(None).cached.any() and sent(fake_server) == (9, 0)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-two-0123456789")
    assert not with_key(None).cached.any() and sent(fake_server) == (12, 0)
    assert len(ResponseCache(cache)) == 12
    # the machine key that keys the fingerprints is not readable by others, and no key is stored in the cache
    assert oct((tmp_path/"credential.key").stat().st_mode & 0o777) == "0o600"
    assert files_with(tmp_path, b"0123456789") == []


# --- 2. policy on what a call reaches, on every call path ----------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_denied_provider_is_refused_however_its_id_is_spelled(fake_server, tmp_path, monkeypatch, transport):
    settings = project(tmp_path, monkeypatch, deny_models="openai/*", transport=transport)
    url = fake_server.base_url
    models = [lb.Model("openai/gpt-4o-mini", api_base=url, api_key="k"), lb.Model("gpt-4o-mini", api_base=url, api_key="k", label="bare"),
              "bench/echo"]
    r = lb.evaluate(PROMPT, models, cases(3), log=False, progress=False, settings=settings).results
    assert sent(fake_server) == (0, 0)
    denied = r[r.model != "bench/echo"]
    assert (denied.error_type == "policy").all() and (denied.attempts == 0).all() and r[r.model == "bench/echo"].error.isna().all()
    assert denied[denied.model == "gpt-4o-mini"].error.str.contains("openai/gpt-4o-mini, as its provider resolves it").all()


@pytest.mark.parametrize("policy", [{"deny_endpoints": "127.0.0.1"}, {"allow_endpoints": "*.openai.com, api.anthropic.com"},
                                    {"deny_endpoints": "http://127.0.0.1:*"}])
def test_a_denied_endpoint_is_refused(fake_server, tmp_path, monkeypatch, policy):
    settings = project(tmp_path, monkeypatch, **policy)
    r = lb.evaluate(PROMPT, lb.Model("openai/local", api_base=fake_server.base_url, api_key="k"), cases(3), log=False, progress=False,
                    settings=settings).results
    assert sent(fake_server) == (0, 0)
    assert (r.error_type == "policy").all() and r.error.str.contains(f"reaches {fake_server.base_url}", regex=False).all()


def test_judges_and_embeddings_are_refused_before_sending(fake_server, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch, deny_endpoints="127.0.0.1")
    url = fake_server.base_url
    judge = lb.scorers.llm_judge("Is it right?", model=lb.Model("openai/judge", api_base=url, api_key="k"))
    similar = lb.scorers.semantic_similarity(value="two", model=lb.Model("openai/text-embedding-3-small", api_base=url, api_key="k"))
    r = lb.evaluate(PROMPT, "bench/echo", cases(3), scorers=[judge, similar], log=False, progress=False, settings=settings).results
    assert sent(fake_server) == (0, 0)
    assert r.error.isna().all() and r["score.judge"].isna().all() and r["score.semantic_similarity"].isna().all()
    assert r.score_error.str.contains("deny_endpoints").all(), r.score_error.tolist()
    with pytest.raises(ProviderError, match="deny_endpoints") as refused:
        lb.evaluation.embed(["one", "two"], lb.Model("openai/text-embedding-3-small", api_base=url, api_key="k"), settings=settings)
    assert refused.value.error_type == "policy" and sent(fake_server) == (0, 0)


PROMPTFOO = """\
prompts: ["Answer briefly: {{{{question}}}}"]
providers: [echo]
defaultTest:
  options:
    provider:
      text: {{id: "openai:chat:gpt-4o-mini", config: {{apiBaseUrl: "{url}", apiKey: not-a-real-key}}}}
      embedding: {{id: "openai:embedding:text-embedding-3-small", config: {{apiBaseUrl: "{url}", apiKey: not-a-real-key}}}}
tests:
  - vars: {{question: "What is two plus two?"}}
    assert:
      - {{type: llm-rubric, value: "says four"}}
      - {{type: similar, value: "four", threshold: 0.5}}
  - vars: {{question: "Which planet is red?"}}
    assert:
      - {{type: llm-rubric, value: "says Mars"}}
      - {{type: similar, value: "Mars", threshold: 0.5}}
"""


@pytest.mark.parametrize("policy", [{"deny_endpoints": "127.0.0.1"}, {"deny_models": "openai/*"}])
def test_promptfoo_assertions_are_refused_before_sending(fake_server, tmp_path, monkeypatch, policy):
    settings = project(tmp_path, monkeypatch, **policy)
    path = tmp_path/"promptfooconfig.yaml"
    path.write_text(PROMPTFOO.format(url=fake_server.base_url))
    done = specs.run_spec(path, log=False, settings=settings)
    assert sent(fake_server) == (0, 0)
    table = done.results.results
    assert table.error.isna().all() and not done.tests.passed.any()      # the candidate (echo) answered; every grader was refused
    details = [json.loads(d) for d in table["rationale.assertions"]]
    word = next(iter(policy))
    for rubric, similar in details:
        assert word in rubric["reason"] and word in similar["reason"], (rubric, similar)


# --- 3. bad arguments and inputs stop before anything is sent ------------------------------------------------------------------

@pytest.mark.parametrize("argument, value, message", [
    ("concurrency", 1.5, "concurrency must be a whole number ≥ 1, got 1.5"),
    ("concurrency", 0, "concurrency must be a whole number ≥ 1, got 0"),
    ("model_concurrency", 2.5, "model_concurrency must be a whole number ≥ 0, got 2.5"),
    ("retries", -1, "retries must be a whole number ≥ 0, got -1"),
    ("timeout_s", 0, "timeout_s must be a number > 0, got 0"),
    ("timeout_s", -1, "timeout_s must be a number > 0, got -1"),
    ("rpm", -5, "rpm must be a number ≥ 0, got -5"),
    ("backoff_s", float("nan"), "backoff_s must be a number ≥ 0, got nan"),
])
def test_bad_engine_arguments_are_refused_before_anything_is_sent(fake_server, tmp_path, monkeypatch, argument, value, message):
    settings = project(tmp_path, monkeypatch)
    model = lb.Model("openai/local", api_base=fake_server.base_url, api_key="k")
    with pytest.raises(ConfigError, match=message) as refused:
        lb.evaluate(PROMPT, model, cases(4), progress=False, settings=settings, **{argument: value})
    assert "It is the" in str(refused.value)                                  # what the value means, with an example
    assert sent(fake_server) == (0, 0) and not (settings.root/"mlflow").exists()


@pytest.mark.parametrize("setting, message", [("concurrency", "'concurrency' must be a whole number ≥ 1"),
                                              ("timeout_s", "'timeout_s' must be a number > 0"), ("rpm", "'rpm' must be a number ≥ 0")])
def test_bad_settings_name_the_key_and_where_to_fix_it(tmp_path, monkeypatch, setting, message):
    bad = {"concurrency": "0", "timeout_s": "0", "rpm": "-5"}[setting]
    monkeypatch.setenv(f"LLMOPS_BENCH_{setting.upper()}", bad)
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(tmp_path)
    assert f"LLMOPS_BENCH_{setting.upper()}" in str(refused.value)


@pytest.mark.parametrize("settings, message", [({"concurrency": 1.5}, "concurrency must be a whole number ≥ 1, got 1.5"),
                                               ({"rpm": -5}, "rpm must be a number > 0, got -5"),
                                               ({"timeout": 0}, "timeout must be a number > 0, got 0"),
                                               ({"timeout": -1}, "timeout must be a number > 0, got -1")])
def test_bad_model_settings_are_refused(settings, message):
    with pytest.raises(ModelError, match=message):
        lb.Model("openai/local", **settings)


@pytest.mark.parametrize("text, line, message", [
    ("id,n\na,1\nb\nc,3\n", 3, "1 cells where the header has 2 (id, n), so no value for 'n'"),
    ("id,n\na,1\nb,2,extra\n", 3, "3 cells where the header has 2 (id, n), so 1 cell(s) more than the header: ['extra']"),
    ('id,n\n"a\nb",1\nc\n', 4, "no value for 'n'"),                         # a quoted value over two lines: the line a record starts on
])
def test_a_csv_row_with_a_missing_or_extra_cell_names_its_line(fake_server, tmp_path, text, line, message):
    path = tmp_path/"cases.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=f"cases.csv, line {line}: ") as refused:
        lb.evaluate(PROMPT, lb.Model("openai/local", api_base=fake_server.base_url, api_key="k"), path, log=False, progress=False)
    assert message in str(refused.value) and sent(fake_server) == (0, 0)


SPEC = """\
prompts: ["Question {{{{n}}}}: what is {{{{n}}}} plus one?"]
models:
  - {{id: openai/local, api_base: "{url}"{model}}}
dataset: {dataset}
{extra}"""


@pytest.mark.parametrize("extra, model, dataset, env, message", [
    ("concurrency: 1.5\n", "", "cases.csv", {}, "concurrency: expected an integer >= 1, got 1.5"),
    ("concurrency: 0\n", "", "cases.csv", {}, "concurrency: expected an integer >= 1, got 0"),
    ("", ", timeout: 0", "cases.csv", {}, "timeout must be a number > 0, got 0"),
    ("", ", rpm: -5", "cases.csv", {}, "rpm must be a number > 0, got -5"),
    ("", ", concurrency: 1.5", "cases.csv", {}, "concurrency must be a whole number ≥ 1, got 1.5"),
    ("", "", "short.csv", {}, "short.csv, line 3: 1 cells where the header has 2"),
    ("", "", "cases.csv", {"LLMOPS_BENCH_TIMEOUT_S": "0"}, "'timeout_s' must be a number > 0, got 0"),
    ("", "", "cases.csv", {"LLMOPS_BENCH_CONCURRENCY": "1.5"}, "'LLMOPS_BENCH_CONCURRENCY' must be an integer, got '1.5'"),
])
def test_the_cli_exits_2_before_sending_or_logging(fake_server, tmp_path, extra, model, dataset, env, message):
    assert CLI.is_file(), "the `llmops-bench` console script is not installed in this environment"
    root = tmp_path/"project"
    root.mkdir()
    (root/"cases.csv").write_text("id,n\na,1\nb,2\n")
    (root/"short.csv").write_text("id,n\na,1\nb\n")
    (root/"spec.yaml").write_text(SPEC.format(url=fake_server.base_url, model=model, dataset=dataset, extra=extra))
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([str(CLI), "eval", str(root/"spec.yaml"), "--no-progress"], capture_output=True, text=True, cwd=tmp_path,
                          env={**base, "LLMOPS_BENCH_ROOT": str(root), "OPENAI_API_KEY": "k", **env}, timeout=600)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sent(fake_server) == (0, 0) and not (root/"mlflow").exists()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_input_the_server_refuses_as_too_large_is_typed_so(fake_server, tmp_path, monkeypatch, transport):
    settings = project(tmp_path, monkeypatch, transport=transport)
    fake_server.configure(max_body=4000)
    model = lb.Model("openai/local", api_base=fake_server.base_url, api_key="k")
    data = [{"id": "short", "n": 1}, {"id": "long", "n": "x" * 5000}]
    r = lb.evaluate(PROMPT, model, data, log=False, progress=False, settings=settings).results.set_index("case_id")
    assert pd.isna(r.error.short)
    assert (r.error_type.long, r.attempts.long) == ("too_large", 1)       # a 413 is not retried, and it is not `other`
    assert sent(fake_server) == (2, 0)


def test_a_limit_refuses_an_over_long_input_before_sending(fake_server, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch, max_input_chars=1000)
    model = lb.Model("openai/local", api_base=fake_server.base_url, api_key="k")
    data = [{"id": "short", "n": 1}, {"id": "long", "n": "x" * 5000}]
    r = lb.evaluate(PROMPT, model, data, log=False, progress=False, settings=settings).results.set_index("case_id")
    assert (r.error_type.long, r.attempts.long) == ("too_large", 0) and pd.isna(r.error_type.short)
    assert "The input is 10,029 characters, over max_input_chars = 1,000" in r.error.long, r.error.long
    assert sent(fake_server) == (1, 0)
    with pytest.raises(ProviderError, match="A text to embed is 5,000 characters") as refused:
        lb.evaluation.embed(["x" * 5000], lb.Model("openai/text-embedding-3-small", api_base=fake_server.base_url, api_key="k"),
                            settings=settings)
    assert refused.value.error_type == "too_large" and sent(fake_server) == (1, 0)


# --- 4. honest latency ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_total_time_counts_retries_and_waits(fake_server, tmp_path, monkeypatch, transport):
    settings = project(tmp_path, monkeypatch, transport=transport, hedge=False)
    fake_server.reset(fail_first=2)
    model = lb.Model("openai/local", api_base=fake_server.base_url, api_key="k")
    r = lb.evaluate(PROMPT, model, cases(1), retries=3, backoff_s=0.2, log=False, progress=False, settings=settings,
                    cache=tmp_path/"cache.sqlite").results
    arrivals = fake_server.stats()["arrivals"]
    assert pd.isna(r.error[0]) and r.attempts[0] == 3 and len(arrivals) == 3
    assert r.total_s[0] > r.latency_s[0] and r.total_s[0] >= 0.95 * (arrivals[-1] - arrivals[0])   # two 500s and two backoffs in it
    # an error row has no answering request, but it took time; a cached row keeps the original call's times
    failed = lb.evaluate(PROMPT, lb.Model("openai/always500-x", api_base=fake_server.base_url, api_key="k"), cases(1), retries=1,
                         backoff_s=0.1, log=False, progress=False, settings=settings, cache=False).results
    assert pd.isna(failed.latency_s[0]) and failed.total_s[0] > 0
    again = lb.evaluate(PROMPT, model, cases(1), log=False, progress=False, settings=settings, cache=tmp_path/"cache.sqlite").results
    assert again.cached[0] and (again.total_s[0], again.latency_s[0]) == (r.total_s[0], r.latency_s[0])
