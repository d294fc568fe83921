"""How many of promptfoo's own example configs `load_spec` reads: clean, with notes, refused (by the feature refused), or crashed.

    LITELLM_LOCAL_MODEL_COST_MAP=True MLFLOW_DISABLE_TELEMETRY=true .venv/bin/python bench/promptfoo_examples.py EXAMPLES [--jobs 4] [--timeout 60]

EXAMPLES is promptfoo's examples/ folder, taken out of its repository (`git archive <commit> examples | tar -x`). A config is
a file named promptfooconfig*.yaml, .yml or .json anywhere under it, the way the issue counted (279 at promptfoo 0.118.12);
promptfooconfig.js/.ts files are JavaScript, never read by `load_spec`, and are only counted apart.

Each config is loaded in its own subprocess, from its own folder, under a timeout, with socket connections refused and an
environment holding no API keys: Python prompt functions and transformVars run at load, and none may reach a network or a
model. `load_spec` stops at the first thing it refuses, so a refused config is counted once, under that feature (the
issue's shares, summed over every feature a config used, added up to more than 100%). Any exception other than
`SpecError` is a crash, an importer bug: its message and the importer's last frame are printed. Figures are printed,
never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # the repository root

CONFIG = re.compile(r"^promptfooconfig.*\.(ya?ml|json)$")
# the refused feature, from a refusal's key and message: the first rule that matches wins
BUCKETS = [
    ("invalid YAML / not a mapping", r"not valid YAML|a spec is a YAML mapping"),
    ("no providers/targets (read as an llmops-bench spec)", r"expected one of: description, experiment|the spec needs '(dataset|models)'"),
    ("redteam (top-level key)", r"^redteam: not supported"),
    ("extensions (top-level key)", r"^extensions: not supported"),
    ("env (top-level key)", r"^env: not supported"),
    ("scenarios (top-level key)", r"^scenarios: not supported"),
    ("evaluateOptions/derivedMetrics/... (top-level key)", r"^(evaluateOptions|commandLineOptions|derivedMetrics|nunjucksFilters): not supported"),
    ("unknown top-level key (outputs, tracing, ...)", r"^[^.\[]+: not supported: the keys read are description, prompts"),
    ("provider config key", r"no litellm equivalent"),
    ("provider key (transform, delay, prompts, ...)", r"a provider is \{id, label, config\}"),
    ("custom provider (file/http/exec/python, ...)", r"provider '.*' is not supported"),
    ("provider apiKeyEnvar unset", r"the environment has no"),
    ("javascript assertion", r"type '(not-)?javascript' is not supported"),
    ("model-graded assertion type", r"type '(not-)?(g-eval|context-\w+|model-graded-factuality|conversation-relevance|select-best|max-score|"
                                    r"search-rubric|agent-rubric|trajectory:goal-success|moderation|classifier)' is not supported"),
    ("other assertion type", r"type '.*' is not supported"),
    ("assertion key", r"assertion key of"),
    ("transform / transformVars (JavaScript)", r"transform.* is JavaScript|a transform on"),
    ("python file missing for transform/assertion", r"no Python file for"),
    ("transformVars failed", r"transformVars .* failed|must return a mapping of vars"),
    ("nunjucks", r"nunjucks"),
    ("file:// var (type or glob)", r"file:// vars of type|a glob is not expanded"),
    ("file:// assertion value", r"a file:// value for"),
    ("vars from a file", r"vars given as"),
    ("object/array/date var", r"objects and arrays of non-text|is read as a date"),
    ("tests from a URL or huggingface://", r"expected a test mapping .* got '(https?|huggingface)://"),
    ("defaultTest from a file", r"^defaultTest: expected a mapping .* got 'file://"),
    ("CSV column (__config, __prefix, ...)", r"column '.*' is not supported"),
    ("test files (.js/.ts/.xlsx, python generator, ...)", r"(?i)test files? |no test files match"),
    ("test / defaultTest key", r"not supported: (.*: )?a (test|defaultTest) key"),
    ("test option", r"a test option"),
    ("multimodal message content (image/audio parts)", r"message \d+: expected \{'role'.*'content': text\}"),
    ("prompt function (JavaScript / script)", r"JavaScript prompt functions"),
    ("python prompt function failed", r"the prompt function .* (cannot be loaded|failed)"),
    ("python prompt function shape", r"returns a different prompt|returns a provider config|returns messages with other|returns text for test|"
                                     r"must return text|returned a list that is not"),
    ("prompt form (file type, JSON, keys)", r"prompt files|a prompt that is JSON|a prompt is \{raw|expected prompt text"),
    ("prompt file glob (file://*.txt)", r"no prompt file at \S*[*?]"),
    ("missing file", r"no (prompt )?file at"),
    ("prompt var missing from a test", r"uses \{\{.*\}\} but test"),
    ("no prompts / no tests", r"needs '(prompts|tests|providers)'|: no tests\."),
]


def configs(root: Path) -> tuple[list[Path], list[Path]]:
    "The promptfoo configs under `root` that `load_spec` could read (YAML/JSON), and the JavaScript/TypeScript ones counted apart."
    found = sorted(p for p in root.rglob("promptfooconfig*") if p.is_file() and "node_modules" not in p.parts)
    return [p for p in found if CONFIG.match(p.name)], [p for p in found if not CONFIG.match(p.name)]


def _no_network() -> None:
    "Every socket connection and name lookup in this process fails: an example's Python code reaches no network and no model."
    import socket
    def refuse(*a, **k): raise OSError("network blocked by bench/promptfoo_examples.py")
    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse


def load_one(path: str) -> dict:
    "One config's outcome: clean, notes (the ignored keys), refused (the SpecError) or crashed (the error and the importer's last frame)."
    import traceback
    from llmops_bench.specs import SpecError, load_spec
    try: spec = load_spec(path)
    except SpecError as e: return {"status": "refused", "message": str(e)}
    except BaseException as e:
        ours = [f for f in traceback.extract_tb(e.__traceback__) if "llmops_bench" in f.filename][-1:]   # the importer's last frame
        return {"status": "crashed", "message": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}",
                "trace": "".join(traceback.format_list(ours))}
    return {"status": "notes" if spec.unsupported else "clean", "notes": spec.unsupported}


def run_one(path: Path, timeout: float) -> dict:
    "`load_one` in a subprocess started in the config's folder, with no API keys in its environment and a timeout."
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", MLFLOW_DISABLE_TELEMETRY="true", PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run([sys.executable, __file__, "--one", str(path)], cwd=path.parent, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired: return {"status": "timed out", "message": f"no answer in {timeout:g} s"}
    last = done.stdout.strip().splitlines()[-1:] or [""]
    try: return json.loads(last[0])
    except ValueError: return {"status": "crashed", "message": f"exit {done.returncode}", "trace": "\n".join(done.stderr.strip().splitlines()[-4:])}


def bucket(message: str) -> str:
    "The refused feature a refusal names (BUCKETS), from its 'key: message' part."
    body = re.sub(r"^.*?, line \d+: ", "", message)
    return next((name for name, rule in BUCKETS if re.search(rule, body)), "other")


def short(message: str, root: Path) -> str:
    "A refusal without its file and line, list indices as [*] and paths under `root` as their names: equal refusals count together."
    body = re.sub(r"^.*?, line \d+: ", "", message)
    body = re.sub(r"\[\d+\]", "[*]", body)
    body = re.sub(re.escape(str(root)) + r"/\S*?([^/\s]+)(?=[\s.,;)]|$)", r"\1", body)
    return re.sub(r"\btest \d+\b", "test N", body)[:200]


def pct(k: int, of: int) -> str:
    return f"{100 * k / of:5.1f}%" if of else "    -"


def report(outcomes: dict[Path, dict], root: Path) -> None:
    "Print the outcomes' counts and shares, refusals by feature, ignored keys, the top 15 refusals and every crash."
    n, refused = len(outcomes), [o for o in outcomes.values() if o["status"] == "refused"]
    print("\noutcome")
    for status, k in Counter(o["status"] for o in outcomes.values()).most_common(): print(f"  {status:<52}{k:4d}  {pct(k, n)}")
    print(f"\nrefused, by the first feature refused: count, share of all {n} configs, share of the {len(refused)} refused")
    for name, k in Counter(bucket(o["message"]) for o in refused).most_common(): print(f"  {name:<52}{k:4d}  {pct(k, n)}  {pct(k, len(refused))}")
    notes = Counter(note.split(" (line")[0] for o in outcomes.values() for note in o.get("notes", []))
    print("\nkeys ignored with a note (configs):" + ("" if notes else " none"))
    for key, k in notes.most_common(): print(f"  {key:<52}{k:4d}")
    keys = Counter(m.group(1) for o in refused if (m := re.search(r"providers(?:\[\d+\])?\.config\.(\w+): not supported", o["message"])))
    print("\nprovider config keys refused (configs): " + ", ".join(f"{key} {k}" for key, k in keys.most_common(25)))
    print("\ntop 15 refusal messages")
    for message, k in Counter(short(o["message"], root) for o in refused).most_common(15): print(f"  {k:4d}  {message}")
    for p, o in outcomes.items():
        if o["status"] == "refused" and bucket(o["message"]) == "other": print(f"  in no bucket: {p.relative_to(root)}: {short(o['message'], root)}")
    failed = [(p, o) for p, o in outcomes.items() if o["status"] in ("crashed", "timed out")]
    print(f"\ncrashed or timed out: {len(failed)}")
    for p, o in failed: print(f"  {p.relative_to(root)}: {o['message']}\n    " + o.get("trace", "").strip().replace("\n", "\n    "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("examples", type=Path, nargs="?", help="promptfoo's examples/ folder")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60, help="seconds one config may take to load")
    parser.add_argument("--one", help=argparse.SUPPRESS)   # the subprocess: load one config, print its outcome as JSON
    args = parser.parse_args()
    if args.one:
        _no_network()
        print(json.dumps(load_one(args.one), default=str))
        return
    if not args.examples: parser.error("give promptfoo's examples/ folder")
    root = args.examples.resolve()
    found, scripts = configs(root)
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout.strip()
    print(f"llmops-bench at {git('log', '-1', '--format=%h %cI')}{' with uncommitted changes in llmops_bench/' if git('status', '--porcelain', 'llmops_bench') else ''}")
    print(f"{len(found)} configs (promptfooconfig*.yaml/.yml/.json) under {root}; {len(scripts)} JavaScript/TypeScript configs not read: "
          f"{', '.join(str(p.relative_to(root)) for p in scripts) or 'none'}")
    with ThreadPoolExecutor(args.jobs) as pool: outcomes = dict(zip(found, pool.map(lambda p: run_one(p, args.timeout), found)))
    report(outcomes, root)


if __name__ == "__main__":
    main()
