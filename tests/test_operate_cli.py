"""The operate commands as a CI step would run them: `runs regressions` exits 1 on a planted regression and 0 on a same-config
rerun, `runs audit` prints who ran what, `promote` exits 0 when it moves the alias and 1 when it refuses, `rollback` restores."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_monitor import CONTAINS, week   # noqa: F401  (the fixture: eight days of runs, a baseline and a planted regression)
from tests.test_promote import BAD, CASES, GOOD

CLI = Path(sys.executable).parent/"llmops-bench"


def run(root: Path, uri: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_BENCH_ROOT": str(root), "MLFLOW_TRACKING_URI": uri, "LLMOPS_BENCH_ALLOW_MODELS": "bench/*"}
    return subprocess.run([str(CLI), *argv], env=env, capture_output=True, text=True, timeout=600)


def test_runs_regressions_exits_1_on_a_regression_and_0_without(week):   # noqa: F811
    uri = week.settings.tracking_uri
    bad = run(week.root, uri, "runs", "regressions", week.planted)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.startswith(f"REGRESSION against baseline {week.runs[0]}") and "flipped pass → fail" in bad.stdout
    fine = run(week.root, uri, "runs", "regressions", week.runs[3], "--baseline", week.runs[0], "--json")
    assert fine.returncode == 0, fine.stderr
    assert json.loads(fine.stdout)["regressed"] is False
    missing = run(week.root, uri, "runs", "regressions", "no-such-run")
    assert missing.returncode == 2 and "llmops-bench:" in missing.stderr


def test_runs_audit_says_who_ran_what(week):   # noqa: F811
    done = run(week.root, week.settings.tracking_uri, "runs", "audit", "--experiment", "qa-prod", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) >= 9 and all(r.get("git_commit", r.get("git.commit")) for r in rows), rows[0]


def test_promote_and_rollback_from_the_command_line(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with (tmp_path/"cases.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["id", "context", "question", "answer"]); w.writeheader(); w.writerows(CASES)
    (tmp_path/"good.md").write_text(GOOD)
    (tmp_path/"bad.md").write_text(BAD)
    args = ["--name", "faq", "--model", "bench/lead", "--data", str(tmp_path/"cases.csv"), "--scorer", CONTAINS, "--experiment", "promotions"]
    nothing_yet = run(tmp_path, uri, "rollback", "faq")
    assert nothing_yet.returncode == 2 and "llmops-bench:" in nothing_yet.stderr
    first = run(tmp_path, uri, "promote", str(tmp_path/"bad.md"), *args, "--json")           # nothing in production: promoted
    assert first.returncode == 0 and json.loads(first.stdout)["promoted"], first.stdout + first.stderr
    better = run(tmp_path, uri, "promote", str(tmp_path/"good.md"), *args, "--json")
    assert better.returncode == 0 and json.loads(better.stdout)["current"] == "1", better.stdout + better.stderr
    worse = run(tmp_path, uri, "promote", str(tmp_path/"bad.md"), *args)
    assert worse.returncode == 1 and worse.stdout.startswith("NOT PROMOTED"), worse.stdout + worse.stderr
    back = run(tmp_path, uri, "rollback", "faq")
    assert back.returncode == 0 and "1" in back.stdout, back.stdout + back.stderr
