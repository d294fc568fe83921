"""Throughput of `lb.evaluate()` against the local fake OpenAI server, next to the baselines measured in the same run.

    python bench/throughput.py [--n 1000] [--concurrency 50] [--latency 0.05] [--rounds 3]

Prints, per round and as medians: the ideal time (n × latency / concurrency), a bare `litellm.acompletion` loop,
`evaluate()` with a fresh cache (every call sent, every answer written to the cache), and the fully cached re-run,
with the ratios. Figures are printed, never asserted: a shared 2-core machine is too noisy for a time limit.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository root: tests/ and bench/

import llmops_bench as lb
from bench.baseline_litellm import bare_litellm_loop
from tests.fake_openai import FakeOpenAIServer


def timed_evaluate(server: FakeOpenAIServer, n: int, concurrency: int, cache: Path) -> tuple[float, lb.Results]:
    model = lb.Model("openai/bench-model", api_base=server.base_url, api_key="not-a-key")
    prompt = lb.Prompt("q", "Question {{i}}: what is {{i}} plus one?")   # the same messages as the bare loop sends
    data = [{"i": i} for i in range(n)]
    start = time.perf_counter()
    results = lb.evaluate(prompt, model, data, concurrency=concurrency, cache=cache, progress=False, log=False)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ideal = args.n * args.latency / args.concurrency
    rows = []
    with FakeOpenAIServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        # warm-up, untimed, for both sides: imports (pandas, litellm), the price map, first connections
        asyncio.run(bare_litellm_loop(server.base_url, args.concurrency, args.concurrency))
        timed_evaluate(server, args.concurrency, args.concurrency, Path(tmp)/"warm-up.sqlite")
        for r in range(args.rounds):
            def run_bare() -> float:
                server.reset()
                return asyncio.run(bare_litellm_loop(server.base_url, args.n, args.concurrency))
            def run_fresh() -> float:
                server.reset()
                elapsed, results = timed_evaluate(server, args.n, args.concurrency, Path(tmp)/f"cache-{r}.sqlite")
                assert results.results.error.isna().all() and server.stats()["requests"] == args.n, "failed calls measure nothing"
                return elapsed
            # alternate which goes first, so a drift in the machine's load does not always favour the same side
            if r % 2: fresh, bare = run_fresh(), run_bare()
            else: bare, fresh = run_bare(), run_fresh()
            server.reset()
            cached, again = timed_evaluate(server, args.n, args.concurrency, Path(tmp)/f"cache-{r}.sqlite")
            assert again.results.cached.all() and server.stats()["requests"] == 0
            rows.append((bare, fresh, cached, fresh / bare))
            print(f"round {r + 1}: bare litellm {bare:.2f} s | evaluate {fresh:.2f} s ({fresh / bare:.2f}x bare) | cached re-run {cached:.3f} s")
    bare, fresh, cached, ratio = (statistics.median(col) for col in zip(*rows))
    print(f"\nn={args.n} concurrency={args.concurrency} latency={args.latency * 1000:.0f} ms, medians of {args.rounds} rounds")
    print(f"  ideal (n × latency / concurrency)  {ideal:7.2f} s")
    print(f"  bare litellm.acompletion loop      {bare:7.2f} s  {bare / ideal:5.2f}x ideal")
    print(f"  lb.evaluate(), cache empty         {fresh:7.2f} s  {fresh / ideal:5.2f}x ideal  {ratio:5.2f}x bare litellm  (median of paired rounds; aim ≤ 1.10x)")
    print(f"  lb.evaluate(), all cached          {cached:7.3f} s  {cached / bare:5.3f}x bare litellm  (aim < 0.5 s)")


if __name__ == "__main__":
    main()
