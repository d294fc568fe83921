"""Shared pytest fixtures: the local OpenAI-compatible fake server of tests/fake_openai.py, a real MLflow server
(tests/mlflow_server.py), and a real Dask cluster (a scheduler and two worker processes on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAIServer, FaultConfig
from tests.mlflow_server import HOST, MlflowServer, _end_group, free_port, port_open

ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent/"dask"


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAIServer]:
    """One fake server process for the whole session (a start costs ~0.5 s); stopped at teardown.

    Its state carries over between tests: use `fake_server` for a clean one.
    """
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_server(openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The session's fake server with zeroed counters and the default configuration (no faults,
    latency 0.0, seed 0), whatever the previous test left behind."""
    openai_server.reset(**asdict(FaultConfig()))
    return openai_server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real `mlflow server` process for the whole session (ready in ~8 s here), on a free port of 127.0.0.1,
    with its own sqlite backend and artifact root in a temporary folder; its process group is ended at teardown.

    `.url`, `.backend_db`, `.artifacts_dir`; `.stop()` then `.start()` is an outage (same port, same backend): a test
    that stops it must start it again (in a `finally`), since later tests share it. Use a fresh experiment name per test.
    """
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster():
    "A scheduler and two single-threaded workers named w0 and w1; {'address', 'workers': {name: Popen}}."
    port, procs = free_port(), {}
    logs = tempfile.TemporaryDirectory()
    def spawn(name: str, *argv: str) -> subprocess.Popen:
        log = open(Path(logs.name)/f"{name}.log", "wb")
        procs[name] = subprocess.Popen([str(DASK), *argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=ROOT)
        return procs[name]
    address = f"tcp://{HOST}:{port}"
    try:
        spawn("scheduler", "scheduler", "--host", HOST, "--port", str(port), "--no-dashboard")
        deadline = time.monotonic() + 60
        while not port_open(port):
            assert time.monotonic() < deadline, (Path(logs.name)/"scheduler.log").read_text()
            time.sleep(0.2)
        for name in ("w0", "w1"):
            spawn(name, "worker", address, "--nthreads", "1", "--nworkers", "1", "--host", HOST, "--no-dashboard", "--name", name)
        from distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
        yield {"address": address, "workers": {n: p for n, p in procs.items() if n != "scheduler"}}
    finally:
        for p in procs.values(): _end_group(p, 10.0)
        logs.cleanup()
