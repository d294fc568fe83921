"""Spec files and promptfoo configs, run end to end against a network peer (the local OpenAI-compatible server) and the CLI.

The promptfoo suite below is written the way promptfoo's documentation writes them: a provider `openai:chat:<model>` with
`config.apiBaseUrl`, prompts with `{{var}}`, `defaultTest`, inline tests, and tests from a CSV file with `__expected` columns.
The expected verdicts are derived by hand from promptfoo's documented assertion semantics (the fake server answers
"echo: " + the prompt, so every output is known in advance).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmops_bench import specs, tracking
from llmops_bench.core import Settings, load_settings

CLI = Path(sys.executable).parent/"llmops-bench"

TESTS_CSV = """question,__expected1,__expected2,__description
What is the capital of France,icontains:CAPITAL,not-contains:Berlin,case-insensitive contains
2+2,regex:\\d\\+\\d$,,regex
"{""city"": ""Paris""}",contains-json,is-json,json inside text is not json
hello,equals:echo: Reply to: hello,,equals with the type named
hello again,Reply to: hello again,,a bare value means equals
"""

CONFIG = """\
description: promptfoo conventions against a local server
prompts:
  - "Reply to: {{{{question}}}}"
providers:
  - id: openai:chat:fake-model
    label: fake
    config:
      apiBaseUrl: {url}
      apiKey: not-a-real-key
      temperature: 0
defaultTest:
  options:
    provider: echo
    rubricPrompt: '{{"pass": true, "score": 1, "reason": "{{{{rubric}}}}"}}'
  assert:
    - type: starts-with
      value: "echo:"
tests:
  - file://tests.csv
  - description: cost needs a provider that reports it
    vars: {{question: cost}}
    assert:
      - type: cost
        threshold: 0.01
  - description: latency under a minute
    vars: {{question: fast}}
    assert:
      - type: latency
        threshold: 60000
  - description: rubric the grader passes
    vars: {{question: be kind}}
    assert:
      - type: llm-rubric
        value: is kind
  - description: rubric the grader fails
    vars: {{question: be rude}}
    assert:
      - type: llm-rubric
        value: is rude
        rubricPrompt: '{{"pass": false, "score": 0.1, "reason": "not {{{{rubric}}}}"}}'
  - description: threshold over weighted scores
    threshold: 0.6
    vars: {{question: partly}}
    assert:
      - type: contains
        value: partly
      - type: equals
        value: something else
outputPath: results.json
"""

# promptfoo's semantics, test by test (defaultTest's starts-with passes everywhere: every output starts with "echo:")
EXPECTED = {
    "case-insensitive contains": True,        # icontains CAPITAL in "...capital..."; not-contains Berlin
    "regex": True,                            # \d\+\d$ matches the end "2+2"
    "json inside text is not json": False,    # contains-json passes, is-json fails: the output is not JSON as a whole
    "equals with the type named": True,       # the output is exactly "echo: Reply to: hello"
    "a bare value means equals": False,       # "Reply to: hello again" != "echo: Reply to: hello again"
    "cost needs a provider that reports it": False,  # no price for a local model: promptfoo fails cost assertions then
    "latency under a minute": True,
    "rubric the grader passes": True,         # the grader (echo) answers the rubric prompt's JSON: pass true
    "rubric the grader fails": False,         # its per-assertion rubricPrompt makes the grader say pass false
    "threshold over weighted scores": True,   # 2 of 3 assertions pass: 0.67 >= 0.6
}


@pytest.fixture
def suite(tmp_path, fake_server) -> Path:
    (tmp_path/"tests.csv").write_text(TESTS_CSV)
    (tmp_path/"promptfooconfig.yaml").write_text(CONFIG.format(url=fake_server.base_url))
    return tmp_path/"promptfooconfig.yaml"


def cli(root: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *argv], capture_output=True, text=True, env={**os.environ, "LLMOPS_BENCH_ROOT": str(root)}, timeout=600)


def test_a_promptfoo_suite_gives_promptfoos_verdicts(suite, tmp_path, fake_server):
    settings = load_settings(tmp_path)
    spec = specs.load_spec(suite, settings)
    assert spec.kind == "promptfoo" and [m.id for m in spec.models] == ["openai/fake-model"] and len(spec.dataset) == 10
    assert any(u.startswith("outputPath") for u in spec.unsupported)
    done = specs.run_spec(spec, settings=settings)
    verdicts = dict(zip(done.tests.test, done.tests.passed))
    assert verdicts == EXPECTED
    assert fake_server.stats()["requests"] == 10     # the model calls; the rubric grader is the offline echo model
    reasons = dict(zip(done.tests.test, done.tests.reason))
    assert reasons["cost needs a provider that reports it"] == "cost: Cost assertion does not support providers that do not return cost"
    assert reasons["json inside text is not json"] == "is-json: Expected output to be valid JSON"
    assert reasons["rubric the grader fails"] == "llm-rubric: not is rude"
    # promptfoo exits non-zero when a test fails; so does the import, through its default gates
    assert done.exit_code == 1 and done.gates.failures
    logged = tracking.read_evaluation(done.run_id, settings)[0]
    assert logged["score.assertions"].tolist() == done.results.results["score.assertions"].tolist()
    # the assertions are one scorer of the evaluation: details as its rationale, the grader's cost apart (nothing, offline)
    table = done.results.results
    assert done.results.spec["scorers"] == ["assertions"] and table["cost.assertions"].tolist() == [0.0] * 10
    details = dict(zip(done.tests.test, map(json.loads, table["rationale.assertions"])))
    assert [(d["type"], d["pass"]) for d in details["threshold over weighted scores"]] == [("starts-with", True), ("contains", True), ("equals", False)]
    assert logged["rationale.assertions"].tolist() == table["rationale.assertions"].tolist()


POLICY_CONFIG = """\
prompts: ["Say {{word}}"]
providers: [echo]
tests:
  - vars: {word: hello}
    assert:
      - {type: llm-rubric, value: says hello}
      - {type: similar, value: hello}
      - {type: contains, value: hello}
"""


def test_model_graded_assertions_obey_the_model_policy(tmp_path):
    # promptfoo's default grader (gpt-4o-mini) and embedder (text-embedding-3-large) are refused by the project's policy: the
    # runner refuses them before anything is sent (no key is needed to see it), and each assertion fails saying so
    (tmp_path/"promptfooconfig.yaml").write_text(POLICY_CONFIG)
    settings = Settings(root=tmp_path, deny_models="gpt-*,text-embedding-*")
    done = specs.run_spec(tmp_path/"promptfooconfig.yaml", log=False, settings=settings)
    rubric, similar, contains = json.loads(done.results.results["rationale.assertions"].iloc[0])
    assert not rubric["pass"] and rubric["reason"].startswith("the grader failed: policy") and "gpt-4o-mini" in rubric["reason"], rubric
    assert not similar["pass"] and similar["reason"].startswith("the embedding model text-embedding-3-large failed") and "text-embedding-3-large" in similar["reason"], similar
    assert contains["pass"] and done.tests.passed.tolist() == [False] and done.exit_code == 1


def test_eval_on_the_cli(suite, tmp_path):
    done = cli(tmp_path, "eval", str(suite), "--json", "--no-progress")
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert {t["test"]: t["passed"] for t in out["tests"]} == EXPECTED and out["run_id"]

    (tmp_path/"data.csv").write_text("id,question,answer\nq1,Capital of France?,France\nq2,Two plus two?,plus\n")
    spec = tmp_path/"spec.yaml"
    spec.write_text(textwrap.dedent("""\
        experiment: spec-cli
        prompts:
          - "Question: {{question}}"
          - {name: short, template: "{{question}}"}
        models: [bench/echo]
        dataset: data.csv
        scorers: [contains, {exact_match: {column: answer}}]
        gates: ["score.contains>=1"]
    """))
    done = cli(tmp_path, "eval", str(spec), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "gates: passed" in done.stdout and "ranked" in done.stdout and "logged to MLflow" in done.stdout
    done = cli(tmp_path, "eval", str(spec), "--gate", "score.exact_match>=0.5", "--no-progress")
    assert done.returncode == 1 and "score.exact_match is 0, but `score.exact_match>=0.5` needs >= 0.5" in done.stdout

    spec.write_text(spec.read_text().replace("scorers: [contains, {exact_match: {column: answer}}]", "scorers:\n  - contains\n  - exact_mach"))
    done = cli(tmp_path, "eval", str(spec))
    assert done.returncode == 2
    assert f"{spec}, line 9: scorers[1]: unknown scorer 'exact_mach' (did you mean 'exact_match'?)" in done.stderr, done.stderr


MIXED = """\
prompts: ["Value: {{v}}"]
providers: [echo]
tests:
  - vars: {v: true}
    assert: [{type: equals, value: "Value: true"}]
  - vars: {v: some text}
    assert: [{type: contains, value: some}]
  - vars: {v: 1.0}
    assert: [{type: equals, value: "Value: 1"}]
  - vars: {v: 2.50}
    assert: [{type: equals, value: "Value: 2.5"}]
"""


def test_vars_of_mixed_types_render_as_javascript_and_log(tmp_path):
    # a var boolean in one test, text in another and a float in a third: promptfoo prints them as JavaScript does, and the
    # evaluation logs to MLflow (before, every call was made and then logging failed with ArrowInvalid on the mixed column)
    (tmp_path/"promptfooconfig.yaml").write_text(MIXED)
    settings = load_settings(tmp_path)
    done = specs.run_spec(tmp_path/"promptfooconfig.yaml", settings=settings)
    assert done.tests.passed.tolist() == [True, True, True, True], done.tests.reason.tolist()
    assert done.run_id and done.unlogged is None and done.results.log_error is None
    logged = tracking.read_evaluation(done.run_id, settings)[0]
    assert logged["input.v"].tolist() == ["true", "some text", "1", "2.5"]


REFUSED = [   # (config fragment, what the message must say): each is refused at load, exit 2, before any call
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    assert:\n      - type: javascript\n        value: output.length > 1\n",
     "line 6: tests[0].assert[0]: assertion type 'javascript' is not supported; JavaScript is not run: write it as a python assertion"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    options:\n      transform: output.trim()\n",
     "line 6: tests[0].options.transform: not supported: the transform 'output.trim()' is JavaScript, which is not run here; write it in Python as file://transform.py:get_transform"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    assert:\n      - type: contains\n        value: hi\n        transform: output.trim()\n",
     "line 6: tests[0].assert[0]: not supported: the assertion's transform 'output.trim()' is JavaScript"),
    ("prompts: [hi]\nproviders:\n  - id: openai:gpt-4o-mini\n    config:\n      keep_alive: 5\n",
     "line 5: providers[0].config.keep_alive: not supported: this provider setting has no litellm equivalent here"),
    ("prompts: [hi]\nproviders: [echo]\nscenarios: []\ntests: [{vars: {}}]\n", "line 3: scenarios: not supported: write the combinations out as tests"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    assert:\n      - type: g-eval\n        value: x\n",
     "assertion type 'g-eval' is not supported; use llm-rubric"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    assert:\n      - type: contians\n        value: x\n", "did you mean 'contains'?"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    provider: openai:gpt-4o\n", "line 5: tests[0].provider: not supported: a test key; list the provider under providers"),
    ("prompts: [hi]\nproviders:\n  - id: http://127.0.0.1:9/api\n    config:\n      method: POST\n      body: {q: '{{prompt}}'}\n"
     "      transformResponse: 'json.items.map(i => i.text)'\ntests: [{vars: {}}]\n",
     "line 7: providers[0].config.transformResponse: not supported: the transform 'json.items.map(i => i.text)' is JavaScript"),
    ("prompts: [hi]\nproviders: [exec:./run.sh]\ntests: [{vars: {}}]\n", "providers[0]: provider 'exec:./run.sh' is not supported"),
    ("prompts: [file://p.py]\nproviders: [echo]\ntests: [{vars: {}}]\n", "line 1: prompts[0]: prompt p.py is not supported: JavaScript prompt functions and Python scripts without a function"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    options:\n      prefix: 'Say: '\n", "tests[0].options.prefix: not supported: a test option; write the prefix into the prompt"),
    ("prompts: [hi]\nproviders: [echo]\ntests: file://t.csv\n", "column '__prefix' is not supported"),
    ("prompts: [hi]\nproviders: [echo]\ntests: [{vars: {}}]\ndefaultTest:\n  assert:\n    - type: rouge-n\n      value: x\n", "line 6: defaultTest.assert[0]: assertion type 'rouge-n' is not supported"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    threshold: high\n", "line 5: tests[0].threshold: expected a number, got 'high'"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: file://vars.yaml\n", "line 4: tests[0].vars: not supported: vars given as 'file://vars.yaml'; write the vars inline"),
    ("prompts: [hi]\nproviders: [echo]\ntests:\n  - vars: {}\n    assert:\n      - type: contains\n        value: '{{ x | upper }}'\n",
     "line 6: tests[0].assert[0]: not supported: the nunjucks construct {{ x | upper }} in a contains value"),
]


@pytest.mark.parametrize("config,message", REFUSED, ids=range(len(REFUSED)))
def test_what_is_not_supported_is_refused_before_any_call(config, message, tmp_path):
    (tmp_path/"t.csv").write_text("q,__prefix\na,b\n")
    path = tmp_path/"promptfooconfig.yaml"
    path.write_text(config)
    with pytest.raises(specs.SpecError) as e: specs.load_spec(path)
    assert str(e.value).startswith(f"{path}, line ") and message in str(e.value), str(e.value)


def test_a_refused_config_exits_2_on_the_cli_and_sends_nothing(tmp_path, fake_server):
    path = tmp_path/"promptfooconfig.yaml"
    path.write_text(f"prompts: [hi]\nproviders:\n  - id: openai:chat:m\n    config: {{apiBaseUrl: {fake_server.base_url}, apiKey: k}}\n"
                    "tests:\n  - vars: {}\n    assert:\n      - type: javascript\n        value: 'true'\n")
    done = cli(tmp_path, "eval", str(path), "--no-progress")
    assert done.returncode == 2 and f"{path}, line 8: tests[0].assert[0]: assertion type 'javascript' is not supported" in done.stderr, done.stderr
    assert fake_server.stats()["requests"] == 0


def test_provider_settings_reach_the_server_as_litellm_arguments(tmp_path, fake_server, monkeypatch):
    # promptfoo provider config keys become litellm arguments; the fake model `leak-headers*` answers with the request's headers,
    # so the configured header is seen arriving; the key named by apiKeyEnvar is used but never shown (scrubbed from the output)
    monkeypatch.setenv("TEAM_PROVIDER_KEY", "sk-team-secret-123")
    (tmp_path/"tools.json").write_text('[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]')
    (tmp_path/"promptfooconfig.yaml").write_text(textwrap.dedent(f"""\
        prompts: ["hi {{{{x}}}}"]
        providers:
          - id: openai:chat:leak-headers-m
            config:
              apiBaseUrl: {fake_server.base_url}
              apiKeyEnvar: TEAM_PROVIDER_KEY
              headers: {{X-Team: blue}}
              temperature: 0.2
              max_tokens: 30
              top_p: 0.9
              seed: 7
              stop: ["END"]
              response_format: {{type: json_object}}
              tools: file://tools.json
              tool_choice: auto
        tests:
          - vars: {{x: a}}
            assert: [{{type: icontains, value: '"x-team": "blue"'}}]
    """))
    spec = specs.load_spec(tmp_path/"promptfooconfig.yaml")
    params = spec.models[0].params
    assert params["tools"][0]["function"]["name"] == "lookup" and params["response_format"] == {"type": "json_object"}
    assert {k: params[k] for k in ("temperature", "max_tokens", "top_p", "seed", "stop")} == {"temperature": 0.2, "max_tokens": 30, "top_p": 0.9, "seed": 7, "stop": ["END"]}
    assert "api_key" not in params and "extra_headers" not in params    # credentials are settings apart, never logged
    done = specs.run_spec(spec, log=False, settings=load_settings(tmp_path))
    output = done.results.results["output"].iloc[0]
    assert done.tests.passed.tolist() == [True], (done.tests.reason.tolist(), output)
    assert "sk-team-secret-123" not in output and fake_server.stats()["requests"] == 1


def test_a_dataset_column_of_mixed_types_is_logged(tmp_path):
    # a JSONL dataset whose column is true in one case, text in another and a number in a third: every call is made and the
    # evaluation is logged (parquet cannot hold such a column; tracking.parquet_ready writes it as text), not kept unlogged
    (tmp_path/"data.jsonl").write_text('{"id": "a", "v": true}\n{"id": "b", "v": "text"}\n{"id": "c", "v": 1.5}\n')
    (tmp_path/"spec.yaml").write_text("prompts: ['V {{v}}']\nmodels: [bench/echo]\ndataset: data.jsonl\nscorers: [{contains: {value: V}}]\n")
    settings = load_settings(tmp_path)
    done = specs.run_spec(tmp_path/"spec.yaml", settings=settings)
    assert done.run_id and done.unlogged is None and done.results.log_error is None
    assert tracking.read_evaluation(done.run_id, settings)[0]["input.v"].tolist() == ["True", "text", "1.5"]
