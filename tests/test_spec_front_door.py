"""Specs go through the one front door, `evaluate()`: what that buys, seen from outside.

1. The real `llmops-bench eval` command with the tracking store down: the results are kept (exit code 3, stderr names the
   folder and the push command); `llmops-bench runs push FOLDER` logs them later to the spec's experiment, once however often
   it is pushed.
2. promptfoo's model-graded assertions (`llm-rubric`, `similar`) against the local OpenAI-compatible server with 30% of chat
   and embedding requests failing: the grader calls and embeddings are retried by the evaluation's runner, so every test gets
   its verdict; they land in the evaluation's cache, so a re-run sends nothing; their cost is `cost.assertions`.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmops_bench import specs
from llmops_bench.core import Settings
from llmops_bench.providers import call_cost
from tests.fake_openai import fake_embedding
from tests.mlflow_server import free_port

CLI = Path(sys.executable).parent/"llmops-bench"
RUN_ID = re.compile(r"[0-9a-f]{32}")


def cli(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *map(str, argv)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_eval_with_the_store_down_keeps_the_results_and_push_logs_them_once(tmp_path):
    assert CLI.is_file(), "the `llmops-bench` console script is not installed in this environment"
    root = tmp_path/"project"
    root.mkdir()
    (root/"qa.csv").write_text("id,context,question,answer\n"
                               "q1,Paris is the capital of France. It is large.,What is the capital of France?,Paris\n"
                               "q2,Two plus two is four. Three is odd.,What is two plus two?,four\n"
                               "q3,The sky is blue. Grass is green.,What colour is grass?,green\n")
    (root/"spec.yaml").write_text(textwrap.dedent("""\
        experiment: front-door
        prompts:
          - "Context: {{context}}\\nQuestion: {{question}}"
        models: [bench/lead, bench/extractive]
        dataset: qa.csv
        scorers: [contains]
    """))
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    base["LLMOPS_BENCH_ROOT"] = str(root)
    down = {**base, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",   # nothing listens there
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

    done = cli("eval", root/"spec.yaml", "--no-progress", env=down, cwd=tmp_path)
    assert done.returncode == 3, (done.stdout, done.stderr)
    kept = list((root/".llmops-bench"/"unlogged").iterdir())
    assert len(kept) == 1, kept
    folder = kept[0]
    assert f"the results are saved in {folder}" in done.stderr and f"llmops-bench runs push {folder}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "logged to MLflow" not in done.stdout
    assert "bench/extractive" in done.stdout   # the summary is still printed
    assert (folder/"results.parquet").is_file() and (folder/"spec.json").is_file()
    assert json.loads((folder/"spec.json").read_text())["experiment"] == "front-door"
    assert not (root/"mlflow"/"mlflow.db").exists()   # nothing was written to any other store

    # the store is back (the project's embedded one): push logs to the experiment the spec named, and only once
    first = cli("runs", "push", folder, env=base, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert RUN_ID.fullmatch(first.stdout.strip()), first.stdout
    assert "experiment 'front-door'" in first.stderr
    again = cli("runs", "push", folder, env=base, cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, first.stdout), again.stderr

    listed = cli("runs", "list", "--experiment", "front-door", "--json", env=base, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs if r["kind"] == "evaluation"] == [first.stdout.strip()]
    assert sum(r["kind"] == "variant" for r in runs) == 2


QUESTIONS = ["What is the capital of France?", "How many legs has a spider?", "Which planet is red?", "What do bees make?",
             "Who wrote Hamlet?", "What is frozen water called?", "Which ocean is largest?", "What colour is the sky?",
             "How many days has a week?", "What gas do plants breathe in?", "Which animal barks?", "What is two plus two?"]

CONFIG = """\
prompts:
  - "Answer briefly: {{{{question}}}}"
providers:
  - id: openai:chat:gpt-4o
    config: {{apiBaseUrl: "{url}", apiKey: not-a-real-key}}
defaultTest:
  options:
    provider:
      text: {{id: "openai:chat:gpt-4o-mini", config: {{apiBaseUrl: "{url}", apiKey: not-a-real-key}}}}
      embedding: {{id: "openai:embedding:text-embedding-3-small", config: {{apiBaseUrl: "{url}", apiKey: not-a-real-key}}}}
    # the test server answers judge-style prompts (a system message with "impartial judge", a scale "from 0 to 1")
    rubricPrompt:
      - role: system
        content: "You are an impartial judge. Reply with JSON: a score from 0 to 1 and a reason."
      - role: user
        content: "Rubric: {{{{rubric}}}}\\nOutput: {{{{output}}}}"
tests:
{tests}
"""
TEST = """\
  - description: q{n}
    vars: {{question: "{q}"}}
    assert:
      - {{type: llm-rubric, value: "answers '{q}' correctly"}}
      - {{type: similar, value: "Answer briefly: {q}", threshold: 0.5}}
      - {{type: not-similar, value: "unrelated words about nothing", threshold: 0.9}}
"""


def test_model_graded_assertions_go_through_the_runner(tmp_path, fake_server):
    path = tmp_path/"promptfooconfig.yaml"
    tests = "".join(TEST.format(n=n, q=q) for n, q in enumerate(QUESTIONS))
    path.write_text(CONFIG.format(url=fake_server.base_url, tests=tests))
    settings = Settings(root=tmp_path, retries=10)   # 30% failures: 11 attempts leave ~2e-6 per call to chance
    seed = next(s for s in range(100) if random.Random(s).random() < 0.3)   # the first embedding request fails for sure
    fake_server.reset(rate_500=0.3, embed_rate_500=0.3, seed=seed)

    done = specs.run_spec(path, log=False, settings=settings)
    stats = fake_server.stats()
    assert stats["faults"]["500"] > 0 and stats["embedding_faults"] > 0, stats   # faults happened ...
    table = done.results.results
    assert len(table) == len(QUESTIONS) and table.error.isna().all() and table.score_error.isna().all()   # ... and were retried
    assert table["score.assertions"].notna().all() and len(done.tests) == len(QUESTIONS)
    assert not done.tests.reason.str.contains("grader|embedding model", regex=True).any(), done.tests.reason.tolist()
    assert stats["requests"] == stats["completed"] + stats["faults"]["500"]
    assert stats["completed"] == 2 * len(QUESTIONS)   # one candidate call and one grader call per test, each answered once

    for output, question, details in zip(table.output, table["input.question"], table["rationale.assertions"]):
        rubric, similar, not_similar = json.loads(details)
        assert rubric["type"] == "llm-rubric" and rubric["reason"].startswith("fake verdict on") and rubric["score"] in (0.0, 1.0)
        want = cosine(fake_embedding(f"Answer briefly: {question}"), fake_embedding(output))
        assert similar["score"] == pytest.approx(want, abs=1e-5)            # float32 on the wire
        assert not_similar["score"] == pytest.approx(1 - cosine(fake_embedding("unrelated words about nothing"), fake_embedding(output)), abs=1e-5)

    # the graders' cost is theirs (gpt-4o-mini's and the embedder's prices), apart from the candidates' (gpt-4o's)
    assert table["cost.assertions"].notna().all() and table["cost.assertions"].sum() > 0
    assert table.cost_usd.tolist() == pytest.approx([call_cost("openai/gpt-4o", int(p), int(c))
                                                     for p, c in zip(table.prompt_tokens, table.completion_tokens)])

    # a re-run on the same cache: candidates, grader calls and embeddings all answered from it; nothing sent, nothing spent
    fake_server.reset()
    again = specs.run_spec(path, log=False, settings=settings)
    stats = fake_server.stats()
    assert stats["requests"] == 0 and stats["embeddings"] == 0, stats
    assert again.results.results.cached.all() and again.results.results["cost.assertions"].sum() == 0
    assert again.tests.passed.tolist() == done.tests.passed.tolist()
    assert again.results.results["rationale.assertions"].tolist() == table["rationale.assertions"].tolist()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
