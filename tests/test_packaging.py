"""Packaging invariants: a cheap `import llmops_bench`, and a repo `mlflow/` folder that never shadows the mlflow package."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("litellm", "mlflow")  # seconds to import each; loaded only when a model is called or a run is logged


def _python(code: str, *flags: str) -> subprocess.CompletedProcess:
    # cwd=ROOT: the checkout's package is imported, and the repo's mlflow/ folder is on sys.path as it is for a user
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_import_is_lazy_by_importtime() -> None:
    # lines look like "import time:  self [us] | cumulative | <indent>package.module"
    stderr = _python("import llmops_bench", "-X", "importtime").stderr
    modules = [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")]
    assert "llmops_bench" in modules
    heavy = _heavy(modules)
    assert not heavy, f"`import llmops_bench` imports {heavy}; import them inside the functions that need them"


def test_import_is_lazy_by_sys_modules() -> None:
    heavy = _heavy(_python("import sys, llmops_bench, llmops_bench.core; print('\\n'.join(sorted(sys.modules)))").stdout.split())
    assert not heavy, f"importing llmops_bench and llmops_bench.core loads {heavy}"


def test_mlflow_folder_does_not_shadow_package() -> None:
    assert not (ROOT/"mlflow"/"__init__.py").exists(), "mlflow/__init__.py would shadow the mlflow package: delete it"
    path = _python("import mlflow; print(mlflow.__file__)").stdout.strip()
    assert path != "None", "`import mlflow` found only the repo's mlflow/ folder (a namespace package): is mlflow installed?"
    assert "site-packages" in Path(path).parts and not Path(path).is_relative_to(ROOT/"mlflow"), path


@pytest.mark.parametrize("path", ["mlflow/mlflow.db", "mlflow/mlflow.db-journal", "mlflow/artifacts/1/abc/artifacts/results.json"])
def test_mlflow_store_is_ignored(path: str) -> None:
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, f"{path} is not git-ignored: see .gitignore"


def test_mlflow_readme_is_not_ignored() -> None:
    # the README keeps the folder in a clean clone, so the store's location is documented where it lives
    assert subprocess.run(["git", "check-ignore", "-q", "mlflow/README.md"], cwd=ROOT).returncode == 1
