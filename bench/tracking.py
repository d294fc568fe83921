"""Time to log a 10,000-row evaluation (8 variants) to MLflow: llmops-bench, a naive per-value loop, and mlflow.genai.evaluate.

    python bench/tracking.py [--cases 1250] [--genai-rows 200] [--evaluate] [--keep DIR]

All three write to their own fresh embedded store (sqlite + local artifacts) in a temporary folder, in one run:

1. `lb.log(results)`: the parent run, 8 child runs, batched params and metrics, the results table on the parent and on each
   child, summary, spec, parquet, 3 plots and the dataset input: what `lb.evaluate(..., log=True)` writes.
2. A naive loop writing the same params and metrics (read back from run 1) one `mlflow.log_param`/`mlflow.log_metric` call at
   a time, and the same tables with `mlflow.log_table` (no plots, no parquet, no dataset input: less than 1 writes).
3. `mlflow.genai.evaluate` on a slice of the cases with a trivial predict function and a custom `@scorer` (offline), which
   records one trace per row: MLflow's own way of logging an evaluation, for scale.

The results table has the real columns (runner.RESULT_COLUMNS, inputs, two score columns): by default it is built from a
small real evaluation of the 8 variants, widened to `--cases` cases per variant (fast); `--evaluate` runs every call through
`lb.evaluate` with the offline bench/ models instead (about 100 s more here: litellm's own per-call work dominates).
Each store is created (its migrations run) before its clock starts; that cost is printed apart. Figures are printed,
never asserted: a shared 2-core machine is too noisy for a time limit.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository root: tests/ and bench/

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION", "True")   # else predict_fn runs once more on row 1
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# mlflow.genai.evaluate's default of 10 workers exhausts SQLAlchemy's pool on the embedded sqlite store here (QueuePool limit
# of size 5 overflow 10 reached): a third of the traces were lost and each row took ~1.3 s; with 4 every trace is written
os.environ.setdefault("MLFLOW_GENAI_EVAL_MAX_WORKERS", "4")
os.environ.pop("MLFLOW_TRACKING_URI", None)   # each part picks its own store below

import pandas as pd

import llmops_bench as lb

AIM_S = 3.0
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Dakar", "Perth", "Tunis", "Porto", "Accra", "Minsk"]
TEMPLATES = ["Context: {{context}}\nQuestion: {{question}}",
             "{{context}}\n\nQuestion: {{question}}",
             "Answer from the context only.\nContext: {{context}}\nQuestion: {{question}}",
             "Question: {{question}}\nContext: {{context}}"]
MODELS = ["bench/lead", "bench/extractive"]


def make_cases(n: int) -> list[dict]:
    return [{"id": f"case-{i:05d}", "question": f"In which city is item {i} kept?",
             "context": f"Item {i} was made in {1900 + i % 120}. Item {i} is kept in the {CITIES[i % len(CITIES)]} museum. "
                        f"Its colour is {('red', 'blue', 'green')[i % 3]}.",
             "answer": CITIES[i % len(CITIES)]} for i in range(n)]


def scorers() -> list:
    return [lb.scorers.contains(), lb.scorers.exact_match()]


def real_results(n_cases: int, root: Path) -> lb.Results:
    "Every call made: 8 variants × n_cases through lb.evaluate with the offline models, not logged."
    prompts = [lb.Prompt("qa", t) for t in TEMPLATES]
    return lb.evaluate(prompts, MODELS, make_cases(n_cases), scorers=scorers(), log=False, cache=False, progress=False,
                       concurrency=64, settings=lb.Settings(root=root))


def widened_results(n_cases: int, root: Path) -> lb.Results:
    "A real evaluation of the 8 variants on 4 cases, widened to n_cases per variant: real columns, dtypes and spec."
    import numpy as np
    small = real_results(4, root)
    cases = make_cases(n_cases)
    base = small.results.drop_duplicates("variant")
    big = base.loc[base.index.repeat(n_cases)].reset_index(drop=True)
    i = np.tile(np.arange(n_cases), len(base))
    rng = np.random.default_rng(0)
    big["case_id"] = [cases[k]["id"] for k in i]
    for col in ("question", "context", "answer"):
        if f"input.{col}" in big:
            big[f"input.{col}"] = [cases[k][col] for k in i]
    big["messages"] = [f'[{{"content":"Context: {cases[k]["context"]}\\nQuestion: {cases[k]["question"]}","role":"user"}}]' for k in i]
    big["output"] = [cases[k]["context"].split(". ")[1 if j % 2 else 0] for j, k in zip(big.index, i)]
    big["latency_s"] = rng.gamma(2.0, 0.01, len(big))
    big["prompt_tokens"] = pd.array(rng.integers(20, 40, len(big)), dtype="Int64")
    big["completion_tokens"] = pd.array(rng.integers(5, 12, len(big)), dtype="Int64")
    big["started_at"] = big["started_at"] + pd.to_timedelta(np.arange(len(big)) * 3, unit="ms")
    for col in [c for c in big.columns if c.startswith("score.")]:
        big[col] = (rng.random(len(big)) < 0.6).astype(big[col].dtype)
    spec = dict(small.spec)
    dataset = lb.Dataset.coerce(cases)
    spec["dataset"] = {**spec["dataset"], "digest": dataset.digest, "size": len(dataset), "source": "generated"}
    return lb.Results(big, spec)


def fresh_store(base: Path, name: str) -> tuple[lb.Settings, str, float]:
    "A new embedded store under base/name, created (migrated) now; its settings, URI and the seconds creation took."
    from llmops_bench.tracking import mlflow_client, tracking_uri
    os.environ.pop("MLFLOW_TRACKING_URI", None)   # mlflow.set_tracking_uri (parts 2, 3) exports it, and it outranks settings
    settings = lb.Settings(root=base/name)
    settings.root.mkdir(parents=True)
    start = time.perf_counter()
    mlflow_client(settings).search_experiments()   # creates mlflow/mlflow.db and runs the migrations
    return settings, tracking_uri(settings), time.perf_counter() - start


def naive_loop(results: lb.Results, source_run: str, source_uri: str, uri: str, root: Path) -> float:
    "The same params, metrics and tables as run `source_run`, one fluent MLflow call per value; the seconds it took."
    import mlflow
    from mlflow import MlflowClient
    src = MlflowClient(source_uri)
    parent = src.get_run(source_run)
    kids = sorted(src.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{source_run}'"),
                  key=lambda r: r.data.tags["llmops_bench.variant"])
    table = results.results.assign(started_at=results.results.started_at.astype(str))
    summary = results.summary()
    mlflow.set_tracking_uri(uri)
    start = time.perf_counter()
    exp = mlflow.create_experiment("naive", artifact_location=(root/"mlflow"/"artifacts"/"naive").as_uri())
    with mlflow.start_run(experiment_id=exp, run_name="naive evaluation"):
        for k, v in parent.data.params.items(): mlflow.log_param(k, v)
        for k, v in parent.data.metrics.items(): mlflow.log_metric(k, v)
        for kid in kids:
            variant = kid.data.tags["llmops_bench.variant"]
            with mlflow.start_run(experiment_id=exp, run_name=variant, nested=True):
                for k, v in kid.data.params.items(): mlflow.log_param(k, v)
                for k, v in kid.data.metrics.items(): mlflow.log_metric(k, v)
                mlflow.log_table(table[table.variant == variant], "results.json")
        mlflow.log_table(table, "results.json")
        mlflow.log_table(summary, "summary.json")
        mlflow.log_dict(results.spec, "spec.json")
    return time.perf_counter() - start


def genai_evaluate(cases: list[dict], uri: str, root: Path) -> tuple[float, int, int]:
    "mlflow.genai.evaluate on `cases` with a trivial predict function and a custom scorer; seconds, predict calls, traces logged."
    import mlflow
    from mlflow.genai import scorer
    calls = []

    # traced explicitly: with MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION=True, mlflow does not wrap predict_fn itself, and an
    # untraced function then logs no trace at all ("Failed to log trace and assessments ... 'NoneType' object has no attribute 'info'")
    @mlflow.trace
    def predict(question: str, context: str) -> str:
        calls.append(1)
        words = {w.strip("?.").lower() for w in question.split()}
        return max(context.split(". "), key=lambda s: len(words & {w.strip(".").lower() for w in s.split()}))

    @scorer
    def contains(outputs, expectations) -> bool:
        return expectations["answer"].lower() in str(outputs).lower()

    data = [{"inputs": {"question": c["question"], "context": c["context"]}, "expectations": {"answer": c["answer"]}} for c in cases]
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("genai", artifact_location=(root/"mlflow"/"artifacts"/"genai").as_uri())
    mlflow.set_experiment(experiment_id=exp)
    start = time.perf_counter()
    result = mlflow.genai.evaluate(data=data, predict_fn=predict, scorers=[contains])
    elapsed = time.perf_counter() - start
    mlflow.flush_trace_async_logging()
    traces = len(mlflow.search_traces(run_id=result.run_id))
    assert "contains/mean" in result.metrics, result.metrics
    return elapsed, len(calls), traces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1250, help="cases per variant (8 variants; default 1250: 10,000 rows)")
    parser.add_argument("--genai-rows", type=int, default=200, help="rows given to mlflow.genai.evaluate (default 200)")
    parser.add_argument("--evaluate", action="store_true", help="make every call with lb.evaluate instead of widening a small real run")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive per-value loop")
    parser.add_argument("--skip-genai", action="store_true", help="leave out mlflow.genai.evaluate")
    parser.add_argument("--keep", type=Path, help="write the stores here (kept) instead of a temporary folder")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-tracking-")) if args.keep is None else args.keep.resolve()
    base.mkdir(parents=True, exist_ok=True)
    here = Path.cwd()
    os.chdir(base)   # anything that opens a relative store (MLflow's default sqlite:///mlflow.db) lands here, not in the repo
    try:
        start = time.perf_counter()
        results = (real_results if args.evaluate else widened_results)(args.cases, base/"work")
        built = time.perf_counter() - start
        rows, variants = len(results.results), len(results.variants)
        how = "lb.evaluate, every call made" if args.evaluate else "widened from a real 8-variant run"
        print(f"results: {rows:,} rows × {results.results.shape[1]} columns, {variants} variants ({how}; built in {built:.1f} s)")

        # the first log in a process imports what logging needs (sqlalchemy, alembic, matplotlib, mlflow.data): timed apart
        warm, _, _ = fresh_store(base, "warm-up")
        start = time.perf_counter()
        lb.log(lb.Results(results.results.head(40), results.spec), "warm-up", settings=warm)
        print(f"first log in this process (imports, 40 rows; not counted below): {time.perf_counter() - start:.1f} s")

        settings, uri, created = fresh_store(base, "lb")
        start = time.perf_counter()
        run_id = lb.log(results, "bench", settings=settings)
        ours = time.perf_counter() - start
        print(f"\n1. lb.log (parent + {variants} children, batched, tables, plots, parquet, dataset input): {ours:.2f} s "
              f"[store creation {created:.1f} s not counted] run {run_id}")
        start = time.perf_counter()
        assert lb.log(results, "bench", settings=settings) == run_id
        print(f"   logging the same results again (found by digest, nothing written): {time.perf_counter() - start:.2f} s")

        naive = None
        if not args.skip_naive:
            _, naive_uri, created = fresh_store(base, "naive")
            naive = naive_loop(results, run_id, uri, naive_uri, base/"naive")
            print(f"2. naive loop (one log_param/log_metric per value, log_table per run; no plots/parquet/inputs): {naive:.2f} s "
                  f"[store creation {created:.1f} s not counted]")

        genai = None
        if not args.skip_genai:
            _, genai_uri, created = fresh_store(base, "genai")
            n = min(args.genai_rows, args.cases)
            genai, calls, traces = genai_evaluate(make_cases(n), genai_uri, base/"genai")
            print(f"3. mlflow.genai.evaluate, {n} rows, trivial predict_fn ({calls} calls, {traces} traces), 1 @scorer, "
                  f"{os.environ['MLFLOW_GENAI_EVAL_MAX_WORKERS']} workers: {genai:.2f} s "
                  f"= {genai / n * 1000:.0f} ms/row [store creation {created:.1f} s not counted]")

        print("\nratios")
        if naive is not None:
            print(f"   naive loop / lb.log: {naive / ours:.1f}x")
        if genai is not None:
            per_row = genai / n
            print(f"   mlflow.genai.evaluate per row / lb.log per row: {per_row / (ours / rows):.0f}x; "
                  f"extrapolated to {rows:,} rows: {per_row * rows:.0f} s (not measured)")
        verdict = "met" if ours < AIM_S else "NOT met"
        print(f"\naim: the {rows:,}-row evaluation logged in under {AIM_S:g} s to the embedded store: {ours:.2f} s, {verdict}")
        if (base/"mlflow.db").exists() or (base/"mlruns").exists():
            print("note: something opened MLflow's default store relative to the working directory during this run")
    finally:
        os.chdir(here)
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
