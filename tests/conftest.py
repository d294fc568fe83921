"""Shared pytest fixtures: the local OpenAI-compatible fake server of tests/fake_openai.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pytest

from tests.fake_openai import FakeOpenAIServer, FaultConfig


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
