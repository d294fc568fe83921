"""README.md's examples run as written: the offline evaluation example, from the repository root, in a fresh process.

The store and the cache go to a temporary project root (LLMOPS_BENCH_ROOT), so the test leaves the repository untouched."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(section: str) -> list[str]:
    text = (ROOT/"README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]   # the section, not its subsections
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_the_offline_evaluation_example_runs_as_written(tmp_path: Path) -> None:
    blocks = _python_blocks("Evaluate prompts and models")
    offline = [b for b in blocks if "gpt-4o-mini" not in b and "api_base" not in b]   # the real-model block needs a key
    assert len(offline) >= 2
    program = "\n".join(offline) + "\nprint('RESULT', len(ev.results), ev.summary().shape[0], ev.run_id)\n"
    env = {**os.environ, "LLMOPS_BENCH_ROOT": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    r = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    last = next(line for line in r.stdout.splitlines() if line.startswith("RESULT"))
    assert last.split()[1:3] == ["4", "2"]            # the second block: 2 variants × 2 cases; logging was off there


def test_every_name_the_readme_uses_exists() -> None:
    import llmops_bench as lb
    used = set(re.findall(r"\blb\.([A-Za-z_]\w*)", (ROOT/"README.md").read_text()))
    missing = sorted(n for n in used if not hasattr(lb, n))
    assert not missing, f"README.md uses lb.{', lb.'.join(missing)}, which llmops_bench does not have"
