"""The importer against real promptfoo: each config of tests/promptfoo/ is run by promptfoo 0.123.1 (Node 22, installed from
the npm registry by tests/promptfoo/install.sh into .promptfoo/) and by `specs.run_spec`, and every (prompt × provider × test)
must get the same pass/fail verdict from both. Providers are `echo` and the local OpenAI-compatible server
(tests/fake_openai.py: it answers "echo: " + the prompt); the configs name it `FAKE_OPENAI_BASE_URL`, replaced by its URL here.
http providers also reach a plain JSON endpoint (tests/json_endpoint.py), named `JSON_ENDPOINT_URL`, with `HTTP_ENDPOINT_TOKEN` set
for both runs (promptfoo reads `{{env.…}}` in its configs: `PROMPTFOO_DISABLE_TEMPLATE_ENV_VARS=false`, as without self-hosting).

Configs the importer refuses (exit 2) are in `REFUSED` and checked for that instead, with promptfoo's own run as the proof that
promptfoo does accept them (a refusal is a missing feature, never a different verdict).

Run as a script (`python -m tests.test_promptfoo_diff`) it prints the agreement per config without asserting.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_bench import specs
from llmops_bench.core import load_settings

HERE = Path(__file__).parent/"promptfoo"
ROOT = HERE.parent.parent
PROMPTFOO = ROOT/".promptfoo"/"node_modules"/"promptfoo"
CONFIGS = sorted(p.name for p in HERE.glob("*.yaml"))


def install() -> str | None:
    "Install promptfoo when missing; None when it is there, else why it could not be installed (npm's last words)."
    done = subprocess.run(["bash", str(HERE/"install.sh")], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()[-800:]


@pytest.fixture(scope="module")
def promptfoo() -> Path:
    "The promptfoo wrapper script, installed if missing; skips only when the npm registry cannot be reached."
    if (why := install()) is not None:
        reach = subprocess.run(["npm", "ping", "--loglevel=error"], capture_output=True, text=True)
        if reach.returncode != 0: pytest.skip(f"the npm registry cannot be reached, so promptfoo 0.123.1 cannot be installed: {why}")
        pytest.fail(f"npm is reachable but tests/promptfoo/install.sh failed: {why}")
    return HERE/"promptfoo.sh"


def laid_out(tmp: Path, base_url: str, json_url: str = "http://127.0.0.1:9") -> Path:
    "A copy of tests/promptfoo/ with the servers' URLs in place of FAKE_OPENAI_BASE_URL and JSON_ENDPOINT_URL."
    dest = tmp/"configs"
    shutil.copytree(HERE, dest, ignore=shutil.ignore_patterns("*.sh"))
    for p in dest.rglob("*"):
        if p.is_file() and p.suffix in (".yaml", ".yml", ".json", ".csv", ".jsonl"):
            p.write_text(p.read_text().replace("FAKE_OPENAI_BASE_URL", base_url).replace("JSON_ENDPOINT_URL", json_url))
    return dest


def promptfoo_verdicts(script: Path, config: Path, tmp: Path) -> dict:
    "(prompt index, provider index, test index) -> pass, from `promptfoo eval -o out.json`."
    out = tmp/f"{config.stem}.out.json"
    env = {**os.environ, "PROMPTFOO_CONFIG_DIR": str(tmp/"promptfoo-home"), "PROMPTFOO_DISABLE_TEMPLATE_ENV_VARS": "false"}
    done = subprocess.run(["bash", str(script), "eval", "-c", config.name, "-o", str(out), "--no-cache", "--no-write", "--no-table",
                           "--no-progress-bar", "-j", "1"], cwd=config.parent, capture_output=True, text=True, env=env, timeout=600)
    if not out.is_file(): raise AssertionError(f"promptfoo did not run {config.name} (exit {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    data = json.loads(out.read_text())
    providers = _provider_ids(config)
    per = len(data["results"]["prompts"]) // len(providers)   # promptfoo lists each prompt once per provider, provider by provider
    return {(r["promptIdx"] % per, _provider_index(providers, r["provider"]), r["testIdx"]): bool(r["success"])
            for r in data["results"]["results"]}


def _provider_index(providers: list[tuple], p) -> int:
    "Where promptfoo's result provider is in the config: by label when it has one (an http provider's id is its URL, not `http`)."
    pid, label = _pf_provider(p)
    return next(i for i, (_, l) in enumerate(providers) if l == label) if label else providers.index((pid, None))


def _pf_provider(p) -> tuple:
    return (p.get("id"), p.get("label") or None) if isinstance(p, dict) else (p, None)


def _provider_ids(config: Path) -> list[tuple]:
    import yaml
    items = yaml.safe_load(config.read_text())["providers"]
    return [(p, None) if isinstance(p, str) else (p["id"], p.get("label")) for p in (items if isinstance(items, list) else [items])]


def our_verdicts(config: Path, tmp: Path) -> dict:
    "(prompt index, provider index, test index) -> pass, from `specs.run_spec` (not logged)."
    from llmops_bench.runner import Variant
    spec = specs.load_spec(config)
    done = specs.run_spec(spec, log=False, settings=load_settings(tmp/"bench-root"))
    names = {Variant(p, m).name: (i, j) for i, p in enumerate(spec.prompts) for j, m in enumerate(spec.models)}
    tests = [int(c) for c in done.results.results["input.__test"]]
    return {(*names[v], t): bool(ok) for v, t, ok in zip(done.tests.variant, tests, done.tests.passed)}


def compare(script: Path, config: Path, tmp: Path) -> tuple[int, int, list[str]]:
    "(rows agreeing, rows, the disagreements in words)."
    theirs, ours = promptfoo_verdicts(script, config, tmp), our_verdicts(config, tmp)
    keys = sorted(set(theirs) | set(ours))
    bad = [f"{config.name} prompt {p} provider {v} test {t}: promptfoo {theirs.get((p, v, t))}, ours {ours.get((p, v, t))}"
           for p, v, t in keys if theirs.get((p, v, t)) != ours.get((p, v, t))]
    return len(keys) - len(bad), len(keys), bad


@pytest.fixture(scope="module")
def json_endpoint():
    "The plain JSON endpoint for http providers, and the token its /secure path wants in the environment."
    from tests.json_endpoint import JsonEndpoint
    with pytest.MonkeyPatch.context() as env, JsonEndpoint() as endpoint:
        env.setenv("HTTP_ENDPOINT_TOKEN", "tok-diff-0123456789")
        yield endpoint


@pytest.mark.parametrize("name", CONFIGS)
def test_the_same_verdict_as_promptfoo(name, promptfoo, tmp_path, fake_server, json_endpoint):
    config = laid_out(tmp_path, fake_server.base_url, json_endpoint.url)/name
    agree, total, bad = compare(promptfoo, config, tmp_path)
    assert total > 0 and not bad, "\n".join(bad)


def _js_template(source: str, name: str) -> str:
    "The text of the JavaScript template literal `const <name> = `...`;` in `source` (escapes read as JavaScript reads them)."
    import re
    body = re.search(rf"^const {name} = `(.*?)`;$", source, re.S | re.M).group(1)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


@pytest.mark.parametrize("ours, theirs", [("ANSWER_RELEVANCY_PROMPT", "ANSWER_RELEVANCY_GENERATE"),
                                          ("CONTEXT_FAITHFULNESS_LONGFORM", "CONTEXT_FAITHFULNESS_LONGFORM"),
                                          ("CONTEXT_FAITHFULNESS_NLI", "CONTEXT_FAITHFULNESS_NLI_STATEMENTS"),
                                          ("CONTEXT_RECALL", "CONTEXT_RECALL"), ("CONTEXT_RELEVANCE", "CONTEXT_RELEVANCE")])
def test_the_grading_prompts_are_promptfoos_own(promptfoo, ours, theirs):
    "Graders given promptfoo's default prompts word for word (read from its dist/) answer as they would for promptfoo."
    source = (PROMPTFOO/"dist"/"src"/"index.js").read_text(encoding="utf-8")
    assert getattr(specs, ours) == _js_template(source, theirs)


if __name__ == "__main__":   # the agreement figure, config by config
    import tempfile
    from tests.fake_openai import FakeOpenAIServer
    from tests.json_endpoint import JsonEndpoint
    if (why := install()) is not None: sys.exit(f"promptfoo is not installed: {why}")
    names = sys.argv[1:] or CONFIGS
    os.environ.setdefault("HTTP_ENDPOINT_TOKEN", "tok-diff-0123456789")
    with FakeOpenAIServer() as server, JsonEndpoint() as endpoint, tempfile.TemporaryDirectory() as tmp:
        folder, sums = laid_out(Path(tmp), server.base_url, endpoint.url), [0, 0]
        for name in names:
            try: agree, total, bad = compare(HERE/"promptfoo.sh", folder/name, Path(tmp))
            except Exception as e:
                print(f"{name}: refused or failed: {type(e).__name__}: {str(e)[:300]}"); continue
            sums[0] += agree; sums[1] += total
            print(f"{name}: {agree}/{total}", *bad, sep="\n  ")
        print(f"TOTAL {sums[0]}/{sums[1]}")
