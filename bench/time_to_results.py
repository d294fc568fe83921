"""Time from a cold `python -c "import llmops_bench as lb; lb.evaluate(... bench/extractive ..., log=False)"` to its results.

    python bench/time_to_results.py [--rounds 5] [--cases 20]

What a first Run of a notebook waits for with offline models: the interpreter's start, `import llmops_bench`, pandas, the
plan, the offline calls, the results table. No litellm import (it would add ~5 s), no MLflow. Each round is a fresh process;
the median is printed next to the time of a bare `python -c "pass"`. Printed, never asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_RUN = """
import sys, llmops_bench as lb
prompt = lb.Prompt("qa", "Context: {{context}}\\nQuestion: {{question}}")
data = [{"context": f"Paris is in France. Rome is in Italy. Case {i} is here.", "question": "Where is Rome?"} for i in range(int(sys.argv[1]))]
results = lb.evaluate(prompt, ["bench/extractive", "bench/lead"], data, scorers=[lb.scorers.contains(value="Italy")], log=False,
                      progress=False)
assert results.results.error.isna().all() and "litellm" not in sys.modules
print(results.summary()[["variant", "score.contains"]].to_string(index=False))
"""


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLMOPS_BENCH_ROOT": tmp}   # a fresh cache: every call is made
        timed(["-c", FIRST_RUN, str(args.cases)], env)                     # the first, untimed: .pyc files, the disk cache
        bare = statistics.median(timed(["-c", "pass"], env) for _ in range(args.rounds))
        runs = []
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as fresh:
                runs.append(timed(["-c", FIRST_RUN, str(args.cases)], {**env, "LLMOPS_BENCH_ROOT": fresh}))
    print(f"python -c 'import llmops_bench as lb; lb.evaluate(bench/extractive + bench/lead, {args.cases} cases, log=False)': "
          f"median {statistics.median(runs):.2f} s of {args.rounds} fresh processes {[round(t, 2) for t in runs]} (aim ≤ 1.5 s); "
          f"a bare `python -c pass` takes {bare:.2f} s")


if __name__ == "__main__":
    main()
