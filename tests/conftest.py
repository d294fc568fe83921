"""Shared pytest fixtures: the local OpenAI-compatible fake server of tests/fake_openai.py, and a real MLflow server
(tests/mlflow_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pytest

from tests.fake_openai import FakeOpenAIServer, FaultConfig
from tests.mlflow_server import MlflowServer


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
