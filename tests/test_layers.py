"""The architecture DESIGN.md draws, checked on the code: lower layers never import higher ones, every MLflow call lives in
tracking, every model call in providers, and the faces (widgets, specs, jobs, cli, ...) reach the engine only through evaluate().

Imports inside functions count too: a lazy import is still a dependency."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/"llmops_bench"
FACES = {"widgets", "specs", "jobs", "cli", "monitor", "views", "notebooks"}


def _layer(module: Path) -> str:
    "The notebook a module is exported from (its layer: 00_core < 01_governance < ... < 12_cli)."
    m = re.search(r"File to edit: \.\./nbs/([^/]+)\.ipynb", module.read_text())
    assert m, f"{module.name} is not exported from a notebook"
    return m.group(1)


from llmops_bench import _EXPORTS   # lb.Variant and friends resolve to the module that defines them

MODULES = {p.stem: p for p in sorted(PKG.glob("*.py")) if not p.stem.startswith("_")}


def _imports(path: Path) -> set[str]:
    "Top-level names of everything `path` imports: our own modules by their names, others by their package."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                found.add(parts[1] if parts[0] == "llmops_bench" and len(parts) > 1 else parts[0])
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod == "llmops_bench" or mod.startswith("llmops_bench."):
                inner = mod.removeprefix("llmops_bench").lstrip(".")
                if inner: found.add(inner.split(".")[0])
                else: found.update(_EXPORTS.get(a.name, a.name) for a in node.names)   # from . import x: a module, or a name lb exports
            else: found.add(mod.split(".")[0])
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_lower_layers_never_import_higher_ones(name: str) -> None:
    mine = _layer(MODULES[name])
    upward = sorted(m for m in _imports(MODULES[name]) & set(MODULES) if _layer(MODULES[m]) > mine)
    assert not upward, f"{name} ({mine}) imports the higher layer(s) {[f'{m} ({_layer(MODULES[m])})' for m in upward]}"


def test_mlflow_is_imported_only_in_tracking_and_the_scorers_interop() -> None:
    users = sorted(n for n, p in MODULES.items() if "mlflow" in _imports(p))
    assert set(users) <= {"tracking", "scorers"}, users


def test_litellm_is_imported_only_in_providers() -> None:
    assert sorted(n for n, p in MODULES.items() if "litellm" in _imports(p)) == ["providers"]


@pytest.mark.parametrize("face", sorted(FACES & set(MODULES)))
def test_faces_reach_the_engine_only_through_evaluate(face: str) -> None:
    reached = _imports(MODULES[face]) & {"runner", "providers", "litellm", "mlflow"}
    assert not reached, f"{face} imports {sorted(reached)}: faces run evaluations through evaluation.evaluate (DESIGN.md)"


def test_the_job_run_id_is_read_from_the_environment_in_one_place() -> None:
    readers = sorted(n for n, p in MODULES.items() if re.search(r"environ[^\n]*JOB_RUN_ENV|JOB_RUN_ENV[^\n]*environ", p.read_text()))
    assert readers == ["tracking"], readers


@pytest.mark.parametrize("face", sorted(FACES & set(MODULES)))
def test_faces_leave_mlflow_calls_to_tracking(face: str) -> None:
    calls = re.findall(r"^.*(?:\bclient\.\w+\(|mlflow_client\(|tracking\._\w+\().*$", MODULES[face].read_text(), flags=re.M)
    assert not calls, f"{face} talks to MLflow itself (every MLflow read and write lives in tracking):\n" + "\n".join(calls[:5])
