"""What `trace=True` costs: logging an evaluation with and without one MLflow trace per call, to a fresh embedded store.

    python bench/tracing.py [--cases 125] [--rounds 3]

Traces are written after the run from the results table (not by a litellm callback during it), so the calls themselves
are not slowed; the cost is MLflow's time to store the traces, printed per call and as a ratio to logging without them.
Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmops_bench as lb
from llmops_bench.cli import DEMO_PROMPTS


def timed_log(results: lb.Results, db: Path, trace: bool) -> float:
    warm = lb.Settings(root=db.parent, tracking_uri=f"sqlite:///{db}", experiment="warm-up")
    lb.log(lb.Results(results.results.head(4), results.spec), settings=warm)      # migrations and imports, untimed
    settings = lb.Settings(root=db.parent, tracking_uri=f"sqlite:///{db}", experiment="timed")
    start = time.perf_counter()
    lb.log(lb.Results(results.results, results.spec), settings=settings, trace=trace)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=125, help="cases; × 2 prompts × 2 models = calls")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = [{"id": f"c{i}", "context": f"Item {i} is red. Item {i} weighs {i} kilos.", "question": f"How much does item {i} weigh?"}
            for i in range(args.cases)]
    results = lb.evaluate([lb.Prompt("qa", t) for t in DEMO_PROMPTS], ["bench/lead", "bench/extractive"], data,
                          cache=False, progress=False, log=False)
    n = len(results.results)
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for trace in (False, True):
                times[trace].append(timed_log(results, Path(tmp)/f"round{r}-trace{trace}.db", trace))
    plain, traced = statistics.median(times[False]), statistics.median(times[True])
    print(f"{n} calls, medians of {args.rounds} rounds, embedded sqlite store")
    print(f"  log without traces  {plain:6.2f} s")
    print(f"  log with traces     {traced:6.2f} s   {traced / plain:4.1f}x   (+{(traced - plain) / n * 1000:.1f} ms per call)")


if __name__ == "__main__":
    main()
