"""Baseline: a plain aiohttp loop against the local fake OpenAI server, the least any Python client can cost.

One pooled session, a semaphore, the request body encoded by aiohttp, the reply parsed with `json.loads`: no cache, no
retries, no rows, no cost. `bench/throughput.py` reads `lb.evaluate()` against it.

    python bench/baseline_aiohttp.py [--n 1000] [--concurrency 50] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path


async def plain_aiohttp_loop(base_url: str, n: int, concurrency: int, model: str = "bench-model") -> float:
    """Seconds taken by `n` chat requests with distinct messages (the same as the other baselines send), at most
    `concurrency` in flight; the first failure propagates."""
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int) -> str:
            body = {"model": model, "messages": [{"role": "user", "content": f"Question {i}: what is {i} plus one?"}]}
            async with semaphore, session.post(f"{base_url}/chat/completions", json=body,
                                               headers={"Authorization": "Bearer not-a-key"}) as response:
                response.raise_for_status()
                return json.loads(await response.read())["choices"][0]["message"]["content"]

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="the fake server's seconds per answer")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/
    from tests.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(latency=args.latency) as server:
        asyncio.run(plain_aiohttp_loop(server.base_url, args.concurrency, args.concurrency))  # warm-up
        server.reset()
        elapsed = asyncio.run(plain_aiohttp_loop(server.base_url, args.n, args.concurrency))
    ideal = args.n * args.latency / args.concurrency
    print(f"plain aiohttp: n={args.n} concurrency={args.concurrency} latency={args.latency}s")
    print(f"  elapsed {elapsed:.2f} s ({args.n / elapsed:.0f} calls/s), ideal {ideal:.2f} s, {elapsed / ideal:.2f}x ideal")


if __name__ == "__main__":
    main()
