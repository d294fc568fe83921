"""Baseline: bare ``litellm.acompletion`` calls against the local fake OpenAI server.

The runner's own benchmark is read against two numbers: the ideal ``n * latency / concurrency``
and this loop, the least a litellm-based engine can cost (no cache, retries, rows or progress).
On a small box litellm's per-call CPU, not the server, sets the pace.

    python bench/baseline_litellm.py [--n 1000] [--concurrency 50] [--latency 0.05]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path


async def bare_litellm_loop(base_url: str, n: int, concurrency: int, model: str = "openai/bench-model") -> float:
    """Seconds taken by `n` ``litellm.acompletion`` calls with distinct messages, at most
    `concurrency` in flight; the first failure propagates (a baseline that errors is no baseline)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
    import litellm  # imported here, before the clock starts: its import takes seconds

    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await litellm.acompletion(
                model=model, api_base=base_url, api_key="not-a-key",
                messages=[{"role": "user", "content": f"Question {i}: what is {i} plus one?"}],
                # as the runner calls it: no hidden SDK retries, an explicit timeout
                num_retries=0, max_retries=0, timeout=30)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench/
    from bench.standalone import measure
    measure(bare_litellm_loop, "bare litellm.acompletion", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
