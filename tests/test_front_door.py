"""One front door: a Compare session runs as one `evaluate()`, so the engine's bounds hold for the whole session.

Read from the server's side (the local OpenAI-compatible test server records when each chat request arrived and how many were
in flight at most), not from our own clocks: six columns of one model with `concurrency=2` and `rpm=60` never have more than
two calls in flight and never start two calls less than a second apart, whether the calls come from `lb.Compare` or from
`lb.evaluate` directly.

Each call takes 1.5 s on the server, longer than the 1 s pacing, so calls overlap and the concurrency bound is reached, not
just respected by accident.
"""
from __future__ import annotations

import ipywidgets as W
import pytest

import llmops_bench as lb

RPM, CONCURRENCY, LATENCY_S = 60, 2, 1.5
SLACK_S = 0.05   # the client paces when it sends; the server stamps when a request arrives (a loaded CI machine delays one by tens of ms)


@pytest.fixture
def settings(tmp_path) -> lb.Settings:
    "A temporary project: no response cache (every call reaches the server), an embedded MLflow store nobody else uses."
    return lb.Settings(root=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", cache=False)


@pytest.fixture(autouse=True)
def _close_widgets():
    yield
    W.Widget.close_all()


def six_versions() -> list[lb.Prompt]:
    return [lb.Prompt("qa", f"Version {i}. Answer briefly: {{{{question}}}}") for i in range(6)]


def assert_bounded(stats: dict, calls: int) -> None:
    arrivals = sorted(stats["arrivals"])
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert stats["requests"] == calls and len(arrivals) == calls, stats
    assert stats["max_inflight"] == CONCURRENCY, stats["max_inflight"]   # reached, never exceeded
    assert min(gaps) >= 60 / RPM - SLACK_S, gaps


def test_compare_with_six_columns_is_one_bounded_run(fake_server, settings):
    fake_server.configure(latency=LATENCY_S)
    model = lb.Model("openai/front-door", api_base=fake_server.base_url, api_key="not-a-real-key")
    w = lb.Compare(six_versions(), model, values={"question": "Where is Paris?"}, log=False, settings=settings,
                   rpm=RPM, concurrency=CONCURRENCY)
    assert len(w.columns) == 6 and len({c.name for c in w.columns}) == 6
    w.run_button.click()
    w.wait(60)
    assert_bounded(fake_server.stats(), 6)
    assert all("echo:" in c.output.value and "Where is Paris?" in c.output.value for c in w.columns)
    assert "6 of 6 calls finished · 0 failed · 0 cached" in w.status.value
    engine = w.results.spec["engine"]
    assert (engine["rpm"], engine["concurrency"], engine["cache"]) == (RPM, CONCURRENCY, False)
    assert w.results.spec["dataset"]["case_ids"] == [w.results.results.case_id.iloc[0]]


def test_evaluate_bounds_the_whole_run_the_same_way(fake_server, settings):
    fake_server.configure(latency=LATENCY_S)
    model = lb.Model("openai/front-door", api_base=fake_server.base_url, api_key="not-a-real-key")
    cases = [{"id": "paris", "question": "Where is Paris?"}, {"id": "rome", "question": "Where is Rome?"}]
    results = lb.evaluate(variants=[(p, model) for p in six_versions()], data=cases, cases=["rome"], rpm=RPM, concurrency=CONCURRENCY,
                          cache=False, log=False, progress=False, settings=settings)
    assert_bounded(fake_server.stats(), 6)
    assert results.results.error.isna().all() and set(results.results.case_id) == {"rome"}
    assert len(results.variants) == 6
