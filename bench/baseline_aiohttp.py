"""Baseline: a plain aiohttp loop against the local fake OpenAI server, the least any Python client can cost.

One pooled session, a semaphore, the request body encoded by aiohttp, the reply parsed with `json.loads`: no cache, no
retries, no rows, no cost. `bench/throughput.py` reads `lb.evaluate()` against it.

    python bench/baseline_aiohttp.py [--n 1000] [--concurrency 50] [--latency 0.05]
"""

from __future__ import annotations

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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench/
    from bench.standalone import measure
    measure(plain_aiohttp_loop, "plain aiohttp", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
