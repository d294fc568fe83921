"""The widgets in a real browser: JupyterLab on 127.0.0.1 and Debian's chromium, driven by playwright, on the fixture notebooks
of tests/notebooks/ (Compare with 3 and with 12 columns, a Grid built to have 4 disagreements, Runs), and the MLflow UI of a real
`mlflow server` showing an evaluation's run page.

Every test saves screenshots of what it checked; set LLMOPS_BENCH_SHOTS to a folder (e.g. docs/) to keep them there instead of in
pytest's temporary folder. Timings (Run to first output in a fresh kernel) are printed, never asserted.

Recipe and pitfalls: ../shared/NOTES-notebooks.md §4.2 (--allow-root, waiting on the notebook's own kernel session, a fresh
workspace per test, the news toast turned off). Needs /usr/bin/chromium (`apt-get install -y chromium`; .ci/run installs it).
"""
from __future__ import annotations

import json
import os
import re
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
NOTEBOOKS = Path(__file__).parent/"notebooks"
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
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1000}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "JupyterLab on a free port of 127.0.0.1, serving copies of the fixture notebooks, with isolated settings and a temporary MLflow store."
    root = tmp_path_factory.mktemp("lab")
    for nb in NOTEBOOKS.glob("*.ipynb"): shutil.copy(nb, root/nb.name)
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


def shot(tmp_path: Path, name: str) -> Path:
    "Where a screenshot goes: $LLMOPS_BENCH_SHOTS (docs/ refreshes the README's pictures) or the test's temporary folder."
    folder = Path(os.environ.get("LLMOPS_BENCH_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder/name


def open_and_run(page, lab, name: str) -> None:
    "Open fixture notebook `name` in a fresh workspace, wait for its own kernel, and run all its cells."
    page.goto(f"{lab.url}/lab/workspaces/e2e-{name.removesuffix('.ipynb')}/tree/{name}?reset&token={lab.token}")
    page.wait_for_function(KERNEL_READY, arg=name, timeout=120_000)
    page.evaluate("window.jupyterapp.shell.collapseLeft()")   # the file browser off: the notebook gets the page's width
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def screenshot(page, locator, path: Path, height: int = 1600) -> None:
    "A screenshot of `locator` in a viewport tall enough to show all of it (JupyterLab paints only what its notebook panel shows)."
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    page.mouse.move(0, 0)
    locator.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    locator.screenshot(path=str(path))
    page.set_viewport_size(size)
    print(f"screenshot: {path} ({path.stat().st_size // 1024} KB)")


# every element of every column lies inside its column, and every column inside the scrolling row; the widget inside its output area
LAYOUT_PROBLEMS = """() => {
  const widget = document.querySelector('.lb-compare'), row = widget.querySelector('.lb-columns');
  const area = widget.closest('.jp-OutputArea-output').getBoundingClientRect(), w = widget.getBoundingClientRect();
  const r = row.getBoundingClientRect(), start = r.left - row.scrollLeft, end = start + row.scrollWidth;
  const name = (el) => el.tagName.toLowerCase() + '.' + [...el.classList].join('.');
  const bad = [];
  if (w.right > area.right + 1 || w.left < area.left - 1) bad.push(`widget ${w.left}-${w.right} outside its output area ${area.left}-${area.right}`);
  if (r.right > w.right + 1) bad.push(`the row of columns ends at ${r.right}, past the widget's edge ${w.right}`);
  for (const col of row.querySelectorAll('.lb-column')) {
    const c = col.getBoundingClientRect();
    if (c.left < start - 1 || c.right > end + 1) bad.push(`column ${c.left}-${c.right} outside the row's scroll area ${start}-${end}`);
    for (const el of col.querySelectorAll('*')) {
      let {left, right, width, height} = el.getBoundingClientRect();
      if (width === 0 || height === 0) continue;
      for (let a = el.parentElement; a && a !== col; a = a.parentElement) {   // what an ancestor clips (an ellipsis) is not visible
        if (getComputedStyle(a).overflowX !== 'visible') { const b = a.getBoundingClientRect(); left = Math.max(left, b.left); right = Math.min(right, b.right); }
      }
      if (right <= left) continue;
      if (left < c.left - 1 || right > c.right + 1) bad.push(`${name(el)} ${left}-${right} outside its column ${c.left}-${c.right}`);
    }
  }
  return bad;
}"""


def test_compare_in_jupyterlab(page, lab, tmp_path):
    from playwright.sync_api import expect
    open_and_run(page, lab, "compare_demo.ipynb")
    run = page.locator(".lb-compare .widget-button", has_text="Run")
    run.wait_for(timeout=120_000)
    columns, outputs = page.locator(".lb-column"), page.locator(".lb-column .lb-output")
    expect(columns).to_have_count(3)

    # a fresh kernel: the widget was just built, Run is pressed at once; how long until the first output is on screen
    clicked = time.monotonic()
    run.click()
    page.wait_for_function("() => [...document.querySelectorAll('.lb-column .lb-output')].some(o => o.innerText.trim().length > 0)",
                           polling="raf", timeout=120_000)
    first = time.monotonic() - clicked
    spinners = page.locator(".lb-column .lb-spinner").count()
    expect(outputs.nth(0)).to_contain_text("Which city?", timeout=120_000)               # bench/echo: the whole prompt
    expect(outputs.nth(1)).to_contain_text("Paris is in France.", timeout=120_000)       # bench/lead: the first sentence
    expect(outputs.nth(2)).to_contain_text("Paris is in France.", timeout=120_000)       # bench/extractive: the sentence that overlaps
    expect(page.locator(".lb-run")).to_contain_text("MLflow run", timeout=120_000)
    print(f"fresh kernel: Run -> first output {first:.2f} s; -> MLflow link {time.monotonic() - clicked:.2f} s "
          f"(spinners still showing when the first output came: {spinners})")
    expect(outputs.nth(1)).not_to_contain_text("Which city?")
    left, right = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
    assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"] - 1, (left, right)   # side by side
    assert not page.evaluate(LAYOUT_PROBLEMS)

    # the model's markup is shown as text and never runs
    expect(outputs.nth(0)).to_contain_text('<script>window.__xss = 1</script> <img src=x onerror="window.__xss = 2">')
    assert page.locator(".lb-output script, .lb-output img").count() == 0
    assert page.evaluate("window.__xss === undefined")

    # the run is logged, its link clickable; a 👍 reaches MLflow and its button shows it is pressed
    link = page.locator(".lb-run a.lb-run-link")
    run_id = link.inner_text().strip()
    assert f"/runs/{run_id}" in link.get_attribute("href") and link.get_attribute("target") == "_blank"
    columns.nth(0).locator(".lb-up").click()
    expect(columns.nth(0).locator(".lb-rated")).to_contain_text("saved on run", timeout=60_000)
    expect(columns.nth(0).locator(".lb-up")).to_have_class(re.compile("lb-pressed"))
    expect(columns.nth(0).locator(".lb-down")).not_to_have_class(re.compile("lb-pressed"))
    expect(columns.nth(0).locator(".lb-facts")).to_contain_text("latency")
    expect(page.locator(".lb-status")).to_contain_text("3 of 3 calls finished")
    screenshot(page, page.locator(".lb-compare"), shot(tmp_path, "compare-3.png"))

    # the run went through evaluate() on a worker thread that has ended; the kernel's own thread stayed free, so it answers at once
    assert page.evaluate(KERNEL_PRINT, "print(w._thread is not None and not w.running and w.results.spec['dataset']['case_ids'] == [w.results.results.case_id[0]])").strip() == "True"

    client = tracking.mlflow_client(lab.settings)
    exp = client.get_experiment_by_name("e2e")
    [evaluation] = client.search_runs([exp.experiment_id], "tags.`llmops_bench.kind` = 'evaluation'")
    assert evaluation.info.run_id == run_id
    ratings = read_ratings(run_id, lab.settings)
    assert ratings.rating.tolist() == ["up"] and ratings.variant.tolist() == [f"raw@{lb.Prompt('raw', '{{question}}').version} · bench/echo"]
    assert client.get_run(run_id).data.metrics["human.up"] == 1

    # an edit marks what it affects as stale: the edited column, the run link and the diff, not the other columns
    prompt = columns.nth(0).locator(".lb-prompt textarea")
    prompt.fill("Echo: {{question}}")
    expect(columns.nth(0)).to_have_class(re.compile("lb-stale"), timeout=30_000)
    expect(columns.nth(0).locator(".lb-stale-note")).to_contain_text("this column was edited")
    expect(page.locator(".lb-compare > .widget-html .lb-stale-note").first).to_be_visible()
    expect(page.locator(".lb-run")).to_have_class(re.compile("lb-stale"))
    expect(columns.nth(1)).not_to_have_class(re.compile("lb-stale"))
    screenshot(page, page.locator(".lb-compare"), shot(tmp_path, "compare-stale.png"))
    prompt.fill("{{question}}")                      # typed back: the output answers what is on screen again
    expect(columns.nth(0)).not_to_have_class(re.compile("lb-stale"), timeout=30_000)

    # a second Run, answered from the cache: wait() in a cell of the running kernel joins the worker thread (no deadlock on the
    # kernel's event loop, where the run used to live); the new Run starts every column afresh, the pressed 👍 included
    run.click()
    assert page.evaluate(KERNEL_PRINT, "w.wait(60); print(w.status.value)").strip().startswith("3 of 3 calls finished")
    expect(page.locator(".lb-status")).to_contain_text("3 cached", timeout=60_000)
    expect(columns.nth(0).locator(".lb-up")).not_to_have_class(re.compile("lb-pressed"))


def test_twelve_columns_scroll_inside_the_widget(page, lab, tmp_path):
    from playwright.sync_api import expect
    open_and_run(page, lab, "compare_12.ipynb")
    run = page.locator(".lb-compare .widget-button", has_text="Run")
    run.wait_for(timeout=120_000)
    columns = page.locator(".lb-column")
    expect(columns).to_have_count(12)
    run.click()
    expect(page.locator(".lb-status")).to_contain_text("12 of 12 calls finished", timeout=120_000)
    expect(page.locator(".lb-run")).to_contain_text("MLflow run", timeout=120_000)

    problems = page.evaluate(LAYOUT_PROBLEMS)
    assert not problems, problems[:10]
    row = page.evaluate("() => { const r = document.querySelector('.lb-columns'); return [r.scrollWidth, r.clientWidth]; }")
    assert row[0] > row[1], row                     # twelve columns do not fit: the row scrolls sideways
    # one-line headers, numbered 1..12, the long name cut with its full text on hover; outputs at a normal line height
    heads = page.evaluate("""() => [...document.querySelectorAll('.lb-column .lb-head')].map(h => ({
        h: h.getBoundingClientRect().height, num: h.querySelector('.lb-num').innerText, title: h.title, cut: h.scrollWidth > h.clientWidth}))""")
    assert [h["num"] for h in heads] == [str(i) for i in range(1, 13)]
    assert all(h["h"] < 24 for h in heads), heads
    long = [h for h in heads if "rather-long-prompt-name" in h["title"]]
    assert len(long) == 3 and all(h["cut"] for h in long)
    line = page.evaluate("() => { const s = getComputedStyle(document.querySelector('.lb-column .lb-output .lb-text')); return [parseFloat(s.lineHeight), parseFloat(s.fontSize)]; }")
    assert line[0] <= 1.6 * line[1], line
    labels = [l.replace("\xa0", " ") for l in page.locator(".lb-diff-view select").first.locator("option").all_inner_texts()]
    assert labels[0].startswith("1 · qa@") and labels[11].startswith("12 · qa-cited@"), labels
    screenshot(page, page.locator(".lb-compare"), shot(tmp_path, "compare-12.png"))


def test_grid_in_jupyterlab(page, lab, tmp_path):
    from playwright.sync_api import expect
    open_and_run(page, lab, "grid_demo.ipynb")
    grid, cells = page.locator(".lb-grid"), page.locator(".lb-grid .lb-cell")
    cells.first.wait_for(timeout=120_000)
    expect(cells).to_have_count(12 * 6)
    # a cell shows its verdict, its scores and several lines of its output, not 15 characters of it
    first = cells.first
    assert first.inner_text().startswith("✓ pass · match 1.00 · length 0.50") and len(first.inner_text()) > 150
    assert first.bounding_box()["height"] > 60
    assert page.locator(".lb-grid script").count() == 0 and page.evaluate("window.__xss === undefined")

    # the disagreement filter: 4 cases were built to disagree (some variants pass, some fail); different passing scores and
    # different outputs with the same score are not disagreements
    grid.locator(".widget-toggle-buttons button", has_text="disagreements").click()
    expect(grid.locator(".lb-count")).to_contain_text("4 of 12 cases (disagreements)", timeout=30_000)
    expect(cells).to_have_count(4 * 6)
    grid.locator(".widget-toggle-buttons button", has_text="failures").click()
    expect(grid.locator(".lb-count")).to_contain_text("4 of 12 cases (failures)", timeout=30_000)
    grid.locator(".widget-toggle-buttons button", has_text="all").click()
    expect(cells).to_have_count(12 * 6, timeout=30_000)

    # a click on a cell far down the grid shows its detail right under its row, inside the viewport
    target = cells.nth(11 * 6 + 4)                  # case-11, column 5: a failing cell
    target.scroll_into_view_if_needed()
    target.click()
    detail = grid.locator(".lb-detail")
    expect(detail).to_contain_text("column 5 · qa@v5 · bench/model-lead · case case-11", timeout=30_000)
    box, cell, height = detail.bounding_box(), target.bounding_box(), page.viewport_size["height"]
    print(f"detail at y={box['y']:.0f} (cell ends at {cell['y'] + cell['height']:.0f}, viewport {height})")
    assert cell["y"] + cell["height"] <= box["y"] + 1 and 0 <= box["y"] < height - 40, (cell, box)
    assert box["width"] > 0.9 * grid.locator(".widget-gridbox").bounding_box()["width"], box   # as wide as the grid
    grid.locator(".widget-toggle-buttons button", has_text="disagreements").click()
    expect(grid.locator(".lb-count")).to_contain_text("4 of 12 cases", timeout=30_000)
    cells.nth(3 * 6 + 1).click()
    expect(detail).to_contain_text("case case-11", timeout=30_000)
    screenshot(page, grid, shot(tmp_path, "grid.png"))


def test_runs_in_jupyterlab(page, lab, tmp_path):
    from playwright.sync_api import expect
    open_and_run(page, lab, "runs_demo.ipynb")
    runs = page.locator(".lb-runs")
    picker = runs.locator("select[multiple]")
    picker.wait_for(timeout=180_000)
    labels = [l.replace("\xa0", " ") for l in picker.locator("option").all_inner_texts()]   # ipywidgets shows spaces as nbsp
    assert len(labels) == 3 and "Compare session" in labels[0] and all("· evaluation ·" in l for l in labels[1:]), labels
    picker.select_option(index=[1, 2])
    runs.locator(".widget-button", has_text="Show").click()
    expect(runs.locator(".lb-verdict")).to_be_visible(timeout=120_000)
    # compare the first prompt's two models: a clear difference, said with the better one first and a positive number
    pick = lambda label: runs.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(f"^{label}$"))).locator("select")
    options = [o.replace("\xa0", " ") for o in pick("a").locator("option").all_inner_texts()]
    pick("a").select_option(index=next(i for i, o in enumerate(options) if o.startswith("qa@") and o.endswith("bench/extractive")))
    pick("b").select_option(index=next(i for i, o in enumerate(options) if o.startswith("qa@") and o.endswith("bench/lead")))
    expect(runs.locator(".lb-verdict")).to_contain_text(re.compile(r"bench/extractive is better than .*bench/lead on icontains by 67 points"),
                                                        timeout=60_000)
    expect(runs.locator("table.lb-table").first).to_be_visible()
    expect(runs.locator("img")).to_have_count(3, timeout=60_000)
    text = runs.inner_text()
    verdict = runs.locator(".lb-verdict").inner_text()
    assert "nan" not in text and not re.search(r"by [-−]", verdict), (verdict, text[:2000])   # the better variant, a positive difference
    print(f"verdict: {verdict}")
    sizes = page.evaluate("() => [...document.querySelectorAll('.lb-runs img')].map(i => [i.getBoundingClientRect().width, i.naturalWidth])")
    area = runs.bounding_box()["width"]
    assert all(w >= min(n, area) - 2 for w, n in sizes), (sizes, area)   # figures at their own size, shrunk only to fit
    # the header cells of the summary are styled (a background), not the browser's bare table
    assert page.evaluate("() => getComputedStyle(document.querySelector('.lb-runs table.lb-table th')).backgroundColor") != "rgba(0, 0, 0, 0)"
    screenshot(page, runs, shot(tmp_path, "runs.png"), height=2600)


def test_runs_against_the_baseline_in_jupyterlab(page, lab, tmp_path):
    "A new prompt version shown in Runs against the run marked as production: the regression said in words, the flipped cases listed."
    from playwright.sync_api import expect
    open_and_run(page, lab, "runs_baseline.ipynb")
    runs = page.locator(".lb-runs")
    verdict = runs.locator(".lb-regression-verdict")
    expect(verdict).to_contain_text("REGRESSION against baseline", timeout=180_000)
    expect(runs.locator("th", has_text="run output")).to_be_visible()
    text = verdict.inner_text()
    assert "significantly worse" in text and "icontains on qa@" in text and "12 case(s) flipped pass → fail" in text, text
    print(f"verdict: {text}")
    screenshot(page, runs, shot(tmp_path, "runs-baseline.png"), height=2600)


def test_mlflow_run_page(page, mlflow_server, tmp_path):
    "The MLflow UI of a real server on an evaluation's parent run: what a teammate sees after a run is logged."
    settings = lb.Settings(root=tmp_path, tracking_uri=mlflow_server.url)
    data = Path(lb.core.__file__).parent/"data"/"demo_qa.csv"
    ev = lb.evaluate([lb.Prompt("qa", "Context: {{context}}\nQuestion: {{question}}")], ["bench/extractive", "bench/lead", "bench/echo"], data,
                     scorers=["icontains(column='answer')", "length(max_words=40)"], experiment="e2e-mlflow-page", progress=False,
                     settings=settings)
    page_url, url = tracking.run_url(ev.run_id, settings)
    page.goto(url)
    page.get_by_text(ev.run_id).first.wait_for(timeout=60_000)
    assistant = page.get_by_text("MLflow Assistant")
    if assistant.count():   # MLflow 3.17 opens a chat side panel on first visit: close it, the run is what the picture is about
        page.locator("button[aria-label*='lose']").last.click(timeout=5_000)
    page.wait_for_timeout(1000)
    assert ev.run_id in page.url
    path = shot(tmp_path, "mlflow-run.png")
    page.screenshot(path=str(path))
    print(f"screenshot: {path} ({path.stat().st_size // 1024} KB)")
    # the case-by-case page in the UI's artifact viewer (an HTML preview in a frame): outputs shown, markup as text, never run
    hostile = lb.evaluate(lb.Prompt("x", "{{q}}"), "bench/echo", [{"q": "<script>window.__xss = 1</script> Paris is in France."}],
                          experiment="e2e-mlflow-page", progress=False, settings=settings)
    def artifact_page(run):
        viewer = page.context.new_page()
        viewer.set_viewport_size({"width": 1400, "height": 900})
        viewer.goto(tracking.run_url(run.run_id, settings)[1] + "/artifacts/cases.html")
        return viewer, viewer.frame_locator("iframe").first
    viewer, frame = artifact_page(hostile)
    frame.get_by_text("window.__xss = 1").first.wait_for(timeout=60_000)                  # the markup, shown as text ...
    assert all(f.evaluate("typeof window.__xss") == "undefined" for f in viewer.frames)  # ... and never run
    viewer.close()
    viewer, frame = artifact_page(ev)
    frame.get_by_text(ev.variants[0]).first.wait_for(timeout=60_000)
    assert frame.locator("tr").count() == 1 + 12                                         # a row per case
    page = viewer
    cases = shot(tmp_path, "mlflow-cases.png")
    page.screenshot(path=str(cases), full_page=False)
    print(f"screenshot: {cases} ({cases.stat().st_size // 1024} KB)")
