"""The committed tree is what nbdev would produce: notebooks are clean and llmops_bench/ is exported from them.

Both checks run nbdev on a copy of the tree, so a failing check never rewrites the working tree.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's scripts; not resolved, a venv's python is a symlink


def _files(root: Path) -> list[str]:
    "Tracked plus untracked-but-not-ignored files: what a commit of the working tree would hold."
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, check=True, capture_output=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (root/f).is_file()})  # skip deleted-but-staged files


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dst = tmp_path/"repo"
    for f in _files(ROOT):
        (dst/f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT/f, dst/f)
    return dst


def _run(cmd: str, cwd: Path) -> None:
    r = subprocess.run([str(BIN/cmd)], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"`{cmd}` failed in a copy of the tree:\n{r.stdout}\n{r.stderr}"


def _package(root: Path, files: list[str]) -> dict[str, bytes]:
    return {f: (root/f).read_bytes() for f in files if f.startswith("llmops_bench/") and "__pycache__" not in f}


def test_notebooks_are_clean(copy: Path) -> None:
    notebooks = {f: (copy/f).read_bytes() for f in _files(ROOT) if f.endswith(".ipynb")}
    _run("nbdev-clean", copy)
    dirty = [f for f, before in notebooks.items() if (copy/f).read_bytes() != before]
    assert not dirty, f"not clean: {', '.join(dirty)}; run `nbdev-clean` and commit the result"


def test_library_matches_notebooks(copy: Path) -> None:
    _run("nbdev-export", copy)
    committed = _package(ROOT, _files(ROOT))
    exported = _package(copy, [p.relative_to(copy).as_posix() for p in (copy/"llmops_bench").rglob("*") if p.is_file()])
    # the copy started as `committed`, so nbdev-export can only change or add files, never remove them
    problems = [f"{f} {'differs' if f in committed else 'is missing from the repo'}" for f in sorted(exported)
                if exported[f] != committed.get(f)]
    assert not problems, ("llmops_bench/ is out of sync with nbs/: " + "; ".join(problems)
                          + ". Edit the notebook, never the module, then run `nbdev-export`.")
