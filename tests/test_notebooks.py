"""One pytest test per notebook in nbs/, each run by `nbdev-test` in a process of its own.

A process per notebook keeps one notebook's background threads (litellm's logging worker, MLflow's trace export)
and global state away from the next, and from the rest of the suite: CPython 3.11.7 can fail a cell with
"AST constructor recursion depth mismatch" when another thread compiles code while the cell is parsed.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
NBDEV_TEST = Path(sys.executable).parent/"nbdev-test"   # the venv's script; not resolved, a venv's python is a symlink


def _tested(nb: Path) -> bool:
    "Same eligibility as nbdev-test: no `_`/`.` file or folder names, no `.notest` sibling."
    parts = nb.relative_to(NBS).parts
    return not any(p.startswith(("_", ".")) for p in parts) and not (nb.parent/".notest").exists()


NOTEBOOKS = sorted(nb for nb in NBS.rglob("*.ipynb") if _tested(nb))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(nb.relative_to(NBS)) for nb in NOTEBOOKS])
def test_notebook(nb: Path) -> None:
    r = subprocess.run([str(NBDEV_TEST), str(nb.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True)
    # nbdev-test prints the failing cell's traceback; show it with the failure
    assert r.returncode == 0, f"{nb.relative_to(ROOT)} failed (reproduce with `nbdev-test {nb.relative_to(ROOT)}`):\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(nb.relative_to(NBS)) for nb in NOTEBOOKS])
def test_notebook_runs_in_a_kernel(nb: Path, tmp_path: Path) -> None:
    """Run All in a real Jupyter kernel, as a user would: unlike nbdev-test's in-process shell, the kernel's event loop is running
    (so blocking waits on it deadlock) and widgets talk to a kernel. papermill stops at the first failing cell and names it."""
    out = tmp_path/nb.name
    r = subprocess.run([sys.executable, "-m", "papermill", str(nb), str(out), "--cwd", str(nb.parent), "-k", "python3",
                        "--no-progress-bar", "--execution-timeout", "600"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"{nb.relative_to(ROOT)} failed in a kernel (reproduce with `papermill {nb.relative_to(ROOT)} out.ipynb`):\n{r.stderr[-6000:]}"
