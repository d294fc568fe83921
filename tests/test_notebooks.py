"""Every notebook in nbs/, two ways, one pytest test each: its inline tests under `nbdev-test` (in-process, no kernel), and Run
All in a real Jupyter kernel under papermill (as a user would: the kernel's event loop is running, so a blocking wait on it
deadlocks, and widgets talk to a kernel).

Each notebook runs in a process of its own: that keeps one notebook's background threads (litellm's logging worker, MLflow's
trace export) and global state away from the next and from the rest of the suite (CPython 3.11.7 can fail a cell with "AST
constructor recursion depth mismatch" when another thread compiles code while the cell is parsed). The processes run two at a
time, started by a fixture the first time a test asks, so the suite uses both cores; each test then reports its own notebook.
"""
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
NBDEV_TEST = Path(sys.executable).parent/"nbdev-test"   # the venv's script; not resolved, a venv's python is a symlink
WORKERS = 2


def _tested(nb: Path) -> bool:
    "Same eligibility as nbdev-test: no `_`/`.` file or folder names, no `.notest` sibling."
    parts = nb.relative_to(NBS).parts
    return not any(p.startswith(("_", ".")) for p in parts) and not (nb.parent/".notest").exists()


NOTEBOOKS = sorted(nb for nb in NBS.rglob("*.ipynb") if _tested(nb))
IDS = [str(nb.relative_to(NBS)) for nb in NOTEBOOKS]


def _nbdev_test(nb: Path, _out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(NBDEV_TEST), str(nb.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True)


def _papermill(nb: Path, out: Path) -> subprocess.CompletedProcess:
    # IN_TEST (which nbdev-test sets too) keeps each notebook's closing nbdev_export from rewriting llmops_bench/ while the notebook
    # running beside it imports it
    return subprocess.run([sys.executable, "-m", "papermill", str(nb), str(out/nb.name), "--cwd", str(nb.parent), "-k", "python3",
                           "--no-progress-bar", "--execution-timeout", "600"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "IN_TEST": "1"})


def _run_all(run) -> dict:
    "`run` on every notebook, WORKERS at a time: the finished process of each, by notebook."
    with tempfile.TemporaryDirectory() as out, ThreadPoolExecutor(WORKERS) as pool:
        return dict(zip(NOTEBOOKS, pool.map(lambda nb: run(nb, Path(out)), NOTEBOOKS)))


@pytest.fixture(scope="module")
def inline_runs() -> dict: return _run_all(_nbdev_test)


@pytest.fixture(scope="module")
def kernel_runs() -> dict: return _run_all(_papermill)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_notebook(nb: Path, inline_runs: dict) -> None:
    r = inline_runs[nb]
    # nbdev-test prints the failing cell's traceback; show it with the failure
    assert r.returncode == 0, f"{nb.relative_to(ROOT)} failed (reproduce with `nbdev-test {nb.relative_to(ROOT)}`):\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_a_kernel(nb: Path, kernel_runs: dict) -> None:
    "Run All in a real Jupyter kernel; papermill stops at the first failing cell and names it."
    r = kernel_runs[nb]
    assert r.returncode == 0, f"{nb.relative_to(ROOT)} failed in a kernel (reproduce with `papermill {nb.relative_to(ROOT)} out.ipynb`):\n{r.stderr[-6000:]}"
