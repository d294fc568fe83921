"""The command line the baseline scripts share: time one client loop against the local fake OpenAI server, after a warm-up."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Awaitable, Callable


def measure(loop: Callable[[str, int, int], Awaitable[float]], label: str, description: str) -> None:
    "Parse --n/--concurrency/--latency, run `loop(base_url, n, concurrency)` once to warm up and once timed; print the figures."
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="the fake server's seconds per answer")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/
    from tests.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(latency=args.latency) as server:
        asyncio.run(loop(server.base_url, args.concurrency, args.concurrency))   # imports, clients, connections: not measured
        server.reset()
        elapsed = asyncio.run(loop(server.base_url, args.n, args.concurrency))
        stats = server.stats()
    ideal = args.n * args.latency / args.concurrency
    print(f"{label}: n={args.n} concurrency={args.concurrency} latency={args.latency}s")
    print(f"  elapsed {elapsed:.2f} s ({args.n / elapsed:.0f} calls/s), ideal {ideal:.2f} s, {elapsed / ideal:.2f}x ideal")
    print(f"  server saw {stats['requests']} requests, max_inflight {stats['max_inflight']}")
