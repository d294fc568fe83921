"""`lb.Compare` in a real browser: JupyterLab on 127.0.0.1 and Debian's chromium, driven by playwright.

Recipe and pitfalls: ../shared/NOTES-notebooks.md §4.2 (--allow-root, waiting on the notebook's own kernel session, a fresh
workspace per test, the news toast turned off). Needs /usr/bin/chromium (`apt-get install -y chromium`; .ci/run installs it).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

import llmops_bench as lb
from llmops_bench import tracking
from llmops_bench.tracking import read_ratings

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
NOTEBOOK = Path(__file__).parent/"notebooks"/"compare_demo.ipynb"
# the notebook's own kernel session is connected and idle (an idle indicator alone is not enough on a new kernel)
KERNEL_READY = """(path) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.context && w.context.path === path && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}"""
# run code in the notebook's kernel and return what it printed
KERNEL_PRINT = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  let out = '';
  const future = kernel.requestExecute({code, silent: false, store_history: false});
  future.onIOPub = (msg) => { if (msg.header.msg_type === 'stream') out += msg.content.text; };
  await future.done;
  return out;
}"""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    "pytest-playwright's launch arguments, pointed at Debian's chromium (playwright's own download needs the internet)."
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (.ci/run does).")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROME_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "JupyterLab on a free port of 127.0.0.1, serving a copy of the fixture notebook, with isolated settings and a temporary MLflow store."
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, root/NOTEBOOK.name)
    settings_dir, workspaces, store = root/".lab-settings", root/".lab-workspaces", root/"store"
    toast = settings_dir/"@jupyterlab"/"apputils-extension"/"notification.jupyterlab-settings"
    toast.parent.mkdir(parents=True)
    toast.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))   # the news toast would cover the page
    store.mkdir()
    settings = lb.Settings(root=store, tracking_uri=f"sqlite:///{store}/mlflow.db")
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings_dir), "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
           "LLMOPS_BENCH_ROOT": str(store), "LLMOPS_BENCH_TRACKING_URI": settings.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(root/"jupyterlab.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{(root/'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.monotonic() > deadline: pytest.fail("JupyterLab did not answer /api/status within 90 s")
            time.sleep(0.25)
        yield SimpleNamespace(url=url, token=token, root=root, settings=settings)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)   # the server shuts its kernels down on SIGTERM
        try: proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)
        log.close()


def test_compare_in_jupyterlab(page, lab, tmp_path):
    from playwright.sync_api import expect
    name = NOTEBOOK.name
    page.goto(f"{lab.url}/lab/workspaces/e2e-compare/tree/{name}?reset&token={lab.token}")
    page.wait_for_function(KERNEL_READY, arg=name, timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    run = page.locator(".lb-compare .widget-button", has_text="Run")
    run.wait_for(timeout=120_000)
    run.click()

    columns, outputs = page.locator(".lb-column"), page.locator(".lb-column .lb-output")
    expect(columns).to_have_count(2)
    expect(outputs.nth(0)).to_contain_text("Which city?", timeout=120_000)               # bench/echo: the whole prompt
    expect(outputs.nth(1)).to_contain_text("Paris is in France.", timeout=120_000)       # bench/lead: the first sentence
    expect(outputs.nth(1)).not_to_contain_text("Which city?")
    left, right = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
    assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"] - 1, (left, right)   # side by side

    # the model's markup is shown as text and never runs
    expect(outputs.nth(0)).to_contain_text('<script>window.__xss = 1</script> <img src=x onerror="window.__xss = 2">')
    assert page.locator(".lb-output script, .lb-output img").count() == 0
    assert page.evaluate("window.__xss === undefined")

    # the run is logged, its id shown; a 👍 reaches MLflow
    expect(page.locator(".lb-run")).to_contain_text("MLflow run", timeout=120_000)
    run_id = page.locator(".lb-run .lb-run-id").inner_text().strip()
    columns.nth(0).locator(".lb-up").click()
    expect(columns.nth(0).locator(".lb-rated")).to_contain_text("saved on run", timeout=60_000)
    expect(columns.nth(0).locator(".lb-facts")).to_contain_text("latency")
    shot = Path(os.environ.get("LLMOPS_BENCH_SCREENSHOT", tmp_path/"compare.png"))
    page.screenshot(path=str(shot), full_page=True)
    page.locator(".lb-compare").screenshot(path=str(shot.with_name(shot.stem + "-widget.png")))   # the whole widget, scrolled
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # the run went through evaluate() on a worker thread that has ended; the kernel's own thread stayed free, so it answers at once
    assert page.evaluate(KERNEL_PRINT, "print(w._thread is not None and not w.running and w.results.spec['dataset']['case_ids'] == [w.results.results.case_id[0]])").strip() == "True"

    client = tracking.mlflow_client(lab.settings)
    exp = client.get_experiment_by_name("e2e")
    [evaluation] = client.search_runs([exp.experiment_id], "tags.`llmops_bench.kind` = 'evaluation'")
    assert evaluation.info.run_id == run_id
    ratings = read_ratings(run_id, lab.settings)
    assert ratings.rating.tolist() == ["up"] and ratings.variant.tolist() == [f"raw@{lb.Prompt('raw', '{{question}}').version} · bench/echo"]
    assert client.get_run(run_id).data.metrics["human.up"] == 1

    # a second Run, answered from the cache: wait() in a cell of the running kernel joins the worker thread (no deadlock on the
    # kernel's event loop, where the run used to live)
    run.click()
    assert page.evaluate(KERNEL_PRINT, "w.wait(60); print(w.status.value)").strip().startswith("2 of 2 calls finished")
    expect(page.locator(".lb-status")).to_contain_text("2 cached", timeout=60_000)
