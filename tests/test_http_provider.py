"""promptfoo `http` providers seen from outside, against a plain JSON endpoint on 127.0.0.1 (tests/json_endpoint.py): calls go
through the runner (retried on 500, cached, keyed by the vars the body uses), JavaScript is refused with exit 2 before anything is
sent, and the headers' credentials are written nowhere. Agreement with promptfoo itself is tests/promptfoo/http.yaml's job."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from llmops_bench import specs, tracking
from llmops_bench.core import Settings
from tests.json_endpoint import JsonEndpoint

CLI = Path(sys.executable).parent/"llmops-bench"
MARK = "SENTINEL-http-5d1c"
TOKEN = f"tok-{MARK}-env"            # read from the environment into a header
LITERAL = f"key-{MARK}-literal"      # written in the config's headers


@pytest.fixture
def endpoint():
    with JsonEndpoint() as e: yield e


def project(tmp_path: Path, monkeypatch) -> Settings:
    root = tmp_path/"project"
    root.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LLMOPS_BENCH_ROOT", str(root))
    return Settings(root=root)


def config(root: Path, url: str, providers: str, tests: str) -> Path:
    "A promptfoo config with one prompt; URL in `providers` is the endpoint's."
    path = root/"promptfooconfig.yaml"
    path.write_text("prompts: ['Capital of {{country}}?']\nproviders:\n" + textwrap.dedent(providers).replace("URL", url)
                    + "tests:\n" + textwrap.dedent(tests))
    return path


def test_calls_go_through_the_runner_retried_on_500_and_cached_by_the_vars_they_use(endpoint, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch)
    path = config(settings.root, endpoint.url, """\
        - id: 'URL/flaky/2'
          config:
            method: POST
            body: {q: '{{prompt}}', lang: '{{lang}}'}
            transformResponse: json.result.items[0].text
        """, """\
        - vars: {country: France, lang: fr}
          assert: [{type: equals, value: 'answer: Capital of France?'}]
        """)
    done = specs.run_spec(path, log=False, settings=settings)
    row = done.results.results.iloc[0]
    assert done.tests.passed.tolist() == [True], done.tests.reason.tolist()
    assert (row.attempts, row.transport, endpoint.hits) == (3, "http", 3) and pd.isna(row.cost_usd)   # two 500s retried; no price
    again = specs.run_spec(path, log=False, settings=settings)
    assert again.results.results.cached.tolist() == [True] and endpoint.hits == 3                # the same request: from the cache
    path.write_text(path.read_text().replace("lang: fr", "lang: de"))                             # same prompt, another body
    other = specs.run_spec(path, log=False, settings=settings)
    assert other.results.results.cached.tolist() == [False] and endpoint.hits == 4


def test_a_javascript_transform_exits_2_naming_file_line_and_key_and_sends_nothing(endpoint, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch)
    path = config(settings.root, endpoint.url, """\
        - id: 'URL/answer'
          config:
            method: POST
            body: {q: '{{prompt}}'}
            transformResponse: 'json.result.items.map(i => i.text).join(" ")'
        """, "- vars: {country: France}\n")
    done = subprocess.run([str(CLI), "eval", str(path), "--no-progress"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LLMOPS_BENCH_ROOT": str(settings.root)})
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert f"{path}, line 7: providers[0].config.transformResponse: not supported: the transform" in done.stderr, done.stderr
    assert "json.choices[0].message.content" in done.stderr and endpoint.hits == 0


@pytest.mark.parametrize("key,value,message", [
    ("validateStatus", "'status < 500'", "line 7: providers[0].config.validateStatus: not supported"),
    ("transformRequest", "'prompt.toUpperCase()'", "JavaScript is not run here"),
    ("sessionParser", "data.headers['x-session']", "sessions are not kept"),
    ("transformResponse", "file://transform.py:get", "not Python"),
    ("auth", "{type: bearer, token: x}", "write the credential as a header"),
])
def test_what_the_http_provider_does_not_read_is_refused(endpoint, tmp_path, monkeypatch, key, value, message):
    settings = project(tmp_path, monkeypatch)
    path = config(settings.root, endpoint.url, """\
        - id: 'URL/answer'
          config:
            method: POST
            body: {q: '{{prompt}}'}
            KEY: VALUE
        """.replace("KEY", key).replace("VALUE", value), "- vars: {country: France}\n")
    with pytest.raises(specs.SpecError) as e: specs.load_spec(path)
    assert str(e.value).startswith(f"{path}, line ") and message in str(e.value), str(e.value)


def test_header_credentials_are_used_but_written_nowhere(endpoint, tmp_path, monkeypatch):
    settings = project(tmp_path, monkeypatch)
    monkeypatch.setenv("HTTP_ENDPOINT_TOKEN", TOKEN)   # what the endpoint's /secure path wants after "Bearer "
    monkeypatch.setenv("HTTP_TEST_AUTH", TOKEN)
    # the config holds LITERAL: it is written outside the project root, which is searched below
    path = config(tmp_path, endpoint.url, """\
        - id: 'URL/secure'
          label: secure
          config:
            method: POST
            headers: {Authorization: 'Bearer {{env.HTTP_TEST_AUTH}}', X-Api-Key: LITERAL}
            body: {q: '{{prompt}}'}
            transformResponse: json.result.items[0].text
        """.replace("LITERAL", LITERAL), """\
        - vars: {country: France}
          assert: [{type: contains, value: France}]
        """)
    spec = specs.load_spec(path, settings)
    model = spec.models[0]
    assert MARK not in repr(model) + model.id + model.label + str(model.params) and "headers" not in model.params
    done = specs.run_spec(spec, settings=settings)
    assert done.tests.passed.tolist() == [True], done.results.results.error.tolist()   # the header reached the endpoint
    run = tracking.read_evaluation(done.run_id, settings)[0]
    assert len(run) == 1
    written = [str(p) for p in settings.root.rglob("*") if p.is_file() and MARK.encode() in p.read_bytes()]
    assert written == [], written   # not in the MLflow store (params, tags), its artifacts, the cache, nor the spec's copy
