"""A 100,000-case evaluation against the local fake OpenAI server, with offline scorers: wall time and peak memory.

    python bench/large_run.py [--cases 10000 100000] [--concurrency 100] [--latency 0.01]

Each size runs twice, each time in a fresh process so its peak memory (the process's maximum resident set) is its own:

- `evaluate`: `lb.evaluate()` as a notebook calls it, every row kept in memory, scored, returned as one table;
- `streamed`: the runner's bounded-memory path: `Runner.arun(..., keep=False)` hands each row to a `ResultsWriter`, which
  scores every chunk of 10,000 rows (`scorers.apply_scorers`) and appends it to one Parquet file.

Both send every call (a fresh cache) and write every answer to the response cache. Time should grow linearly with the
number of cases; printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # the repository root: tests/

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import llmops_bench as lb
from llmops_bench.runner import ResponseCache, ResultsWriter, Runner, plan, run_sync
from llmops_bench.scorers import apply_scorers

mode, n, concurrency, base_url, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
prompt = lb.Prompt("q", "Question {{n}}: what is {{n}} plus one?")
model = lb.Model("openai/bench-model", api_base=base_url, api_key="not-a-key")
scorers = [lb.scorers.contains(column="n"), lb.scorers.length(max_words=50), lb.scorers.regex(r"plus one")]
data = [{"id": f"case-{i:06d}", "n": str(i)} for i in range(n)]
start = time.perf_counter()
if mode == "evaluate":
    rows = lb.evaluate(prompt, model, data, scorers=scorers, concurrency=concurrency, cache=tmp/"cache.sqlite", progress=False,
                       log=False, settings=lb.Settings(root=tmp)).results
    count, errors = len(rows), int(rows.error.notna().sum())
else:
    calls = plan(prompt, model, data)
    inputs = {c.case.id: c.case.inputs for c in calls}
    score = lambda frame: apply_scorers(frame, [inputs[i] for i in frame.case_id], scorers)
    cache = ResponseCache(tmp/"cache.sqlite")
    with ResultsWriter(tmp/"results.parquet", chunk_rows=10_000, transform=score) as writer:
        run_sync(lambda: Runner(concurrency=concurrency, cache=cache, progress=False).arun(calls, on_row=writer, keep=False))
    import pyarrow.parquet as pq
    table = pq.read_table(tmp/"results.parquet", columns=["error", "score.contains"])   # scored, every chunk
    count, errors = table.num_rows, table.num_rows - table["error"].null_count
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": count,
                  "errors": errors}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.01, help="the fake server's seconds per answer")
    args = parser.parse_args()
    from tests.fake_openai import FakeOpenAIServer

    results = {}
    with FakeOpenAIServer(latency=args.latency) as server:
        for n in args.cases:
            for mode in ("evaluate", "streamed"):
                server.reset()
                with tempfile.TemporaryDirectory() as tmp:
                    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(n), str(args.concurrency), server.base_url, tmp],
                                         capture_output=True, text=True, cwd=ROOT, env={"LLMOPS_BENCH_ROOT": tmp, "PATH": ""})
                if out.returncode != 0: raise SystemExit(f"{mode} {n} failed:\n{out.stderr[-3000:]}")
                r = results[mode, n] = json.loads(out.stdout.strip().splitlines()[-1])
                assert r["rows"] == n and server.stats()["requests"] >= n, (r, server.stats()["requests"])
                print(f"{mode:9s} {n:7,d} cases: {r['seconds']:7.1f} s  ({n / r['seconds']:5.0f} calls/s)  peak memory {r['peak_mb']:6.0f} MB"
                      f"  errors {r['errors']}", flush=True)
    ideal = {n: n * args.latency / args.concurrency for n in args.cases}
    print(f"\nconcurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms (ideal {', '.join(f'{ideal[n]:.0f} s' for n in args.cases)})")
    if len(args.cases) >= 2:
        small, large = min(args.cases), max(args.cases)
        for mode in ("evaluate", "streamed"):
            ratio = results[mode, large]["seconds"] / results[mode, small]["seconds"]
            print(f"  {mode}: {large:,d} cases took {ratio:.1f}x the time of {small:,d} ({large / small:.0f}x the cases; linear is "
                  f"{large / small:.0f}x); peak {results[mode, large]['peak_mb']:.0f} MB (aim ≤ 2048 MB)")


if __name__ == "__main__":
    main()
