"""One pytest test per notebook in nbs/, run in-process the way `nbdev-test` runs them."""
from pathlib import Path

import pytest
import nbdev.test as nbt  # not `from nbdev.test import test_nb`: pytest would collect it as a test
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"


def _tested(nb: Path) -> bool:
    "Same eligibility as nbdev-test: no `_`/`.` file or folder names, no `.notest` sibling."
    parts = nb.relative_to(NBS).parts
    return not any(p.startswith(("_", ".")) for p in parts) and not (nb.parent/".notest").exists()


NOTEBOOKS = sorted(nb for nb in NBS.rglob("*.ipynb") if _tested(nb))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(nb.relative_to(NBS)) for nb in NOTEBOOKS])
def test_notebook(nb: Path) -> None:
    cfg = get_config(ROOT)
    ok, _ = nbt.test_nb(nb, skip_flags=str(cfg.tst_flags).split(), basepath=ROOT,
                        cell_timeout=int(cfg.cell_timeout) or None)
    # test_nb prints the failing cell's traceback to stderr, which pytest shows with the failure
    assert ok, f"{nb.relative_to(ROOT)} failed; reproduce with `nbdev-test {nb.relative_to(ROOT)}`"
