"""Throughput of `lb.evaluate()` against the local fake OpenAI server, next to the baselines measured in the same run.

    python bench/throughput.py [--n 1000] [--concurrency 50] [--latency 0.05] [--rounds 5] [--skip-litellm]

Each round measures, against the same server: a plain aiohttp loop, a bare `litellm.acompletion` loop, `evaluate()` on the
lean transport with a fresh cache, `evaluate()` forced through litellm (`transport = litellm`), the fully cached re-run, and
`evaluate()` against the faulty profile (10% 429 with Retry-After 1 s, 5% 500, 1% hanging 30 s, 1% malformed bodies) next
to a fault-free run. The order of the timed runs alternates between rounds, so a drift in the machine's load does not always
favour the same side. Medians are printed with their ratios; figures are printed, never asserted: a shared 2-core machine
is too noisy for a time limit.
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
from bench.baseline_aiohttp import plain_aiohttp_loop
from bench.baseline_litellm import bare_litellm_loop
from tests.fake_openai import FakeOpenAIServer

FAULTS = {"rate_429": 0.10, "rate_500": 0.05, "rate_hang": 0.01, "rate_malformed": 0.01, "retry_after": 1.0, "hang_s": 30.0}
PROMPT = lb.Prompt("q", "Question {{i}}: what is {{i}} plus one?")   # the same messages as the baselines send


def timed_evaluate(server: FakeOpenAIServer, n: int, concurrency: int, cache: Path, transport: str = "auto",
                   faults: dict | None = None) -> tuple[float, lb.Results]:
    """Seconds `lb.evaluate()` takes for `n` calls (the server reset, with `faults` if given); checks nothing was lost."""
    server.reset(**(faults or {}))
    model = lb.Model("openai/bench-model", api_base=server.base_url, api_key="not-a-key")
    settings = lb.Settings(root=cache.parent, transport=transport)
    start = time.perf_counter()
    results = lb.evaluate(PROMPT, model, [{"i": i} for i in range(n)], concurrency=concurrency, cache=cache, progress=False,
                          log=False, settings=settings)
    elapsed = time.perf_counter() - start
    rows = results.results
    assert len(rows) == n and rows.case_id.is_unique, "every case, once"
    if not faults: assert rows.error.isna().all(), f"failed calls measure nothing: {rows.error.dropna().head(3).tolist()}"
    return elapsed, results


def baseline(loop, server: FakeOpenAIServer, n: int, concurrency: int) -> float:
    server.reset()
    return asyncio.run(loop(server.base_url, n, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-litellm", action="store_true", help="leave out the two litellm runs (slow at large --n)")
    args = parser.parse_args()
    n, c = args.n, args.concurrency
    ideal = n * args.latency / c
    runs: dict[str, list[float]] = {}
    hedged, failed, tails = [], [], []
    with FakeOpenAIServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # warm-up, untimed: imports (pandas, aiohttp, litellm), the price map, first connections
        baseline(plain_aiohttp_loop, server, c, c); timed_evaluate(server, c, c, tmp/"warm-up.sqlite")
        if not args.skip_litellm: baseline(bare_litellm_loop, server, c, c); timed_evaluate(server, c, c, tmp/"warm-up-2.sqlite", "litellm")
        for r in range(args.rounds):
            def fresh_then_cached() -> None:
                runs.setdefault("evaluate lean", []).append(timed_evaluate(server, n, c, tmp/f"lean-{r}.sqlite")[0])
                elapsed, again = timed_evaluate(server, n, c, tmp/f"lean-{r}.sqlite")
                assert again.results.cached.all() and server.stats()["requests"] == 0, "a cached re-run sends nothing"
                runs.setdefault("evaluate cached", []).append(elapsed)
            def faulty() -> float:   # a seed per round: the same unlucky fault sequence must not repeat in every round
                elapsed, results = timed_evaluate(server, n, c, tmp/f"faulty-{r}.sqlite", faults={**FAULTS, "seed": r})
                rows = results.results
                hedged.append(rows.hedged.mean()); failed.append(rows.error.notna().sum())
                tails.append(((rows.attempts - rows.hedged) >= 4).sum())
                server.reset(**{k: 0.0 for k in FAULTS if k.startswith("rate_")})
                return elapsed
            steps = [("plain aiohttp", lambda: baseline(plain_aiohttp_loop, server, n, c)),
                     ("bare litellm", lambda: baseline(bare_litellm_loop, server, n, c)),
                     ("evaluate lean", fresh_then_cached),
                     ("evaluate litellm", lambda: timed_evaluate(server, n, c, tmp/f"litellm-{r}.sqlite", "litellm")[0]),
                     ("evaluate faulty", faulty),
                     ("evaluate fault-free", lambda: timed_evaluate(server, n, c, tmp/f"fault-free-{r}.sqlite")[0])]
            if args.skip_litellm: steps = [(name, step) for name, step in steps if "litellm" not in name]
            for name, step in (steps if r % 2 == 0 else steps[::-1]):
                if (elapsed := step()) is not None: runs.setdefault(name, []).append(elapsed)
            print(f"round {r + 1}: " + " | ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items()), flush=True)
    m = {k: statistics.median(v) for k, v in runs.items()}
    plain = m["plain aiohttp"]
    print(f"\nn={n} concurrency={c} latency={args.latency * 1000:.0f} ms, medians of {args.rounds} rounds")
    print(f"  ideal (n × latency / concurrency)   {ideal:7.2f} s")
    print(f"  plain aiohttp loop                  {plain:7.2f} s  {plain / ideal:5.2f}x ideal")
    if not args.skip_litellm:
        print(f"  bare litellm.acompletion loop       {m['bare litellm']:7.2f} s  {m['bare litellm'] / plain:5.2f}x plain aiohttp")
    print(f"  lb.evaluate(), lean transport       {m['evaluate lean']:7.2f} s  {m['evaluate lean'] / plain:5.2f}x plain aiohttp  (aim ≤ 1.3x)")
    if not args.skip_litellm:
        print(f"  lb.evaluate(), transport=litellm    {m['evaluate litellm']:7.2f} s  {m['evaluate litellm'] / plain:5.2f}x plain aiohttp")
    print(f"  lb.evaluate(), all cached           {m['evaluate cached']:7.3f} s  (aim ≤ 0.1 s)")
    print(f"  lb.evaluate(), fault-free           {m['evaluate fault-free']:7.2f} s")
    print(f"  lb.evaluate(), faulty profile       {m['evaluate faulty']:7.2f} s  {m['evaluate faulty'] / m['evaluate fault-free']:5.2f}x fault-free  "
          f"(aim ≤ 1.5x; hedged {statistics.median(hedged):.1%} of calls, {statistics.median(failed):.0f} failed after retries)")
    print(f"    (a run lasts as long as its unluckiest call: {statistics.median(tails):.0f} of {n} calls met 3 or more faults in a row, "
          f"each 429 waiting out its 1 s Retry-After and each 5xx its backoff)")


if __name__ == "__main__":
    main()
