"""Cost-aware evaluation, checked by simulation at the statistics level (synthetic paired outcomes, no model calls).

- The sequential test's false-positive rate stays within alpha however often it looks (Ville's inequality), and with a real
  difference it stops early on average; its power is printed.
- `cases_needed` plans an n that reaches the stated power under the exact McNemar test the product runs, and in the unpaired
  limit agrees with the closed-form normal approximation for two proportions.
"""
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binom, binomtest, wilcoxon

from llmops_bench.stats import betting_capital, cases_needed, sequential_decision

ALPHA = 0.05


def _paired(rng, sims: int, n: int, p_a_only: float, p_b_only: float) -> np.ndarray:
    "Per case b − a for pass/fail outcomes: −1 with p_a_only, +1 with p_b_only, 0 otherwise (both pass or both fail)."
    u = rng.random((sims, n))
    return np.where(u < p_a_only, -1.0, np.where(u < p_a_only + p_b_only, 1.0, 0.0))


def _first_stop(d: np.ndarray, batch: int, min_cases: int) -> tuple[np.ndarray, np.ndarray]:
    "For each simulated sequence: whether the procedure ever declared a difference, and the cases used when it stopped."
    capital = np.maximum.accumulate(betting_capital((d + 1) / 2, 0.5, ALPHA), axis=1)   # p = 1 / max K so far
    looks = np.arange(max(batch, min_cases) - 1, d.shape[1], batch)
    hit = capital[:, looks] >= 1 / ALPHA
    used = np.where(hit.any(axis=1), looks[hit.argmax(axis=1)] + 1, d.shape[1])
    return hit.any(axis=1), used


def test_no_inflated_false_positives_with_identical_variants() -> None:
    rng = np.random.default_rng(1)
    sims = 2000
    for discordance in (0.1, 0.4):                 # identical variants that disagree on 10% or 40% of the cases
        d = _paired(rng, sims, 2000, discordance / 2, discordance / 2)
        every_case, _ = _first_stop(d, batch=1, min_cases=1)              # a look after every single case
        batched, _ = _first_stop(d, batch=50, min_cases=100)
        mc_error = 3 * math.sqrt(ALPHA * (1 - ALPHA) / sims)
        print(f"discordance {discordance}: false positives {every_case.mean():.3f} (a look per case), {batched.mean():.3f} (per batch of 50)")
        assert every_case.mean() <= ALPHA + mc_error and batched.mean() <= ALPHA + mc_error
    # what peeking does to a fixed-n test: the same sequences, an exact McNemar test after each batch of 50
    d = _paired(rng, 1000, 2000, 0.05, 0.05)
    wins, discordant = np.cumsum(d > 0, axis=1), np.cumsum(d != 0, axis=1)
    looks = np.arange(99, 2000, 50)
    k, m = wins[:, looks], discordant[:, looks]
    p = np.minimum(1, 2 * np.minimum(binom.cdf(k, m, 0.5), binom.sf(k - 1, m, 0.5)))   # exact McNemar at each look
    peeking = float((p < ALPHA).any(axis=1).mean())
    print(f"for contrast, an exact McNemar test peeked at every 50 cases: {peeking:.3f} false positives")
    assert peeking > 2 * ALPHA                    # the problem the sequential test solves is real


def test_a_real_difference_stops_early() -> None:
    rng = np.random.default_rng(2)
    for gain, discordance in ((0.10, 0.20), (0.05, 0.15)):
        d = _paired(rng, 1000, 2000, (discordance - gain) / 2, (discordance + gain) / 2)
        found, used = _first_stop(d, batch=50, min_cases=100)
        plan = cases_needed(gain, discordance=discordance).n
        print(f"gain {gain:.0%}, discordance {discordance:.0%}: power {found.mean():.3f} within 2,000 cases, "
              f"median {np.median(used):.0f} / mean {used.mean():.0f} cases used (a fixed-n design for 80% power plans {plan})")
        assert used.mean() < 2000 * 0.75 and found.mean() > 0.8


def test_the_decision_object_agrees_with_the_simulated_rule() -> None:
    rng = np.random.default_rng(3)
    d = _paired(rng, 1, 600, 0.05, 0.15)[0]
    state = sequential_decision(d, alpha=ALPHA)
    test_p = 1 / np.max(betting_capital((d + 1) / 2, 0.5, ALPHA))
    assert math.isclose(state.p_value, min(1.0, test_p)) and state.lo < state.diff < state.hi


@pytest.mark.parametrize("effect, discordance", [(0.10, 0.20), (0.05, 0.10), (0.15, 0.40)])
def test_cases_needed_reaches_its_power_under_the_exact_test(effect: float, discordance: float) -> None:
    rng = np.random.default_rng(4)
    plan = cases_needed(effect, discordance=discordance, power=0.8)
    d = _paired(rng, 2000, plan.n, (discordance - effect) / 2, (discordance + effect) / 2)
    b_only, a_only = (d > 0).sum(axis=1), (d < 0).sum(axis=1)
    power = np.mean([binomtest(int(b), int(a + b), 0.5).pvalue < ALPHA if a + b else False for a, b in zip(a_only, b_only)])
    print(f"effect {effect}, discordance {discordance}: planned {plan.n} (normal approximation {plan.n_normal}), simulated power {power:.3f}")
    assert abs(power - 0.8) < 0.035                 # 2,000 simulations: Monte-Carlo error about ±0.018 at 2 sd


@pytest.mark.parametrize("p1, effect", [(0.6, 0.1), (0.3, 0.05), (0.8, -0.1)])
def test_cases_needed_in_the_unpaired_limit_matches_the_two_proportion_formula(p1: float, effect: float) -> None:
    p2, pbar = p1 + effect, p1 + effect / 2
    za, zb = NormalDist().inv_cdf(1 - ALPHA / 2), NormalDist().inv_cdf(0.8)
    closed = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / effect ** 2
    planned = cases_needed(effect, baseline=p1).n_normal
    print(f"p1 {p1}, effect {effect}: paired n with independent variants {planned}, two-proportion formula {closed:.1f}")
    assert abs(planned - closed) / closed < 0.02


def test_cases_needed_for_a_continuous_score_reaches_its_power_with_wilcoxon() -> None:
    rng = np.random.default_rng(5)
    plan = cases_needed(0.05, sd=0.2, kind="continuous")
    d = rng.normal(0.05, 0.2, (1000, plan.n))
    power = np.mean([wilcoxon(row).pvalue < ALPHA for row in d])
    print(f"continuous: planned {plan.n} (paired t {plan.n_normal}), simulated Wilcoxon power {power:.3f}")
    assert abs(power - 0.8) < 0.04


def _cases(n: int) -> list[dict]:
    "Questions whose answer sits in the second sentence of the context: bench/extractive finds it, bench/lead (first sentence) never."
    return [{"id": f"q{i}", "context": f"Item {i} is red. Item {i} weighs {i % 97} kg.", "question": f"How many kg does item {i} weigh?",
             "answer": f"{i % 97} kg"} for i in range(n)]


def test_a_planted_difference_stops_after_a_fraction_of_the_calls(tmp_path) -> None:
    import llmops_bench as lb
    prompt = lb.Prompt("w", "{{context}}\n\nQuestion: {{question}}")
    ev = lb.evaluate(prompt, ["bench/lead", "bench/extractive"], _cases(2000), scorers=["contains()"], stop="decided",
                     cache=False, progress=False, log=False)
    record = ev.spec["sequential"]
    print(ev.stopping)
    print(f"calls sent {record['calls_sent']} of {record['calls_sent'] + record['calls_not_sent']}")
    assert record["stopped_because"] == "decided" and record["decisions"][0]["decision"] == f"{ev.variants[1]} is better"
    assert record["calls_sent"] == len(ev.results) < 0.1 * 4000


def test_identical_variants_never_get_a_false_better(tmp_path) -> None:
    import llmops_bench as lb
    same = [lb.Prompt("w", "{{context}}\n\nQuestion: {{question}}"), lb.Prompt("w", "{{context}}\n\nQuestion:  {{question}}")]
    to_the_end = lb.evaluate(same, "bench/extractive", _cases(2000), scorers=["contains()"], stop="decided", cache=False,
                             progress=False, log=False).spec["sequential"]
    futile = lb.evaluate(same, "bench/extractive", _cases(2000), scorers=["contains()"], stop="decided", effect=0.05, cache=False,
                         progress=False, log=False).spec["sequential"]
    print(f"identical variants: {to_the_end['stopped_because']} after {to_the_end['cases_used']} cases; with effect=0.05: "
          f"{futile['stopped_because']} after {futile['cases_used']} cases ({futile['decisions'][0]['decision']})")
    assert (to_the_end["stopped_because"], to_the_end["cases_used"], to_the_end["decisions"][0]["decision"]) == ("the cases ran out", 2000, "undecided")
    assert futile["stopped_because"] == "decided" and futile["decisions"][0]["decision"] == "no difference of the effect's size"
    assert futile["cases_used"] < 2000


def test_a_spec_file_stops_once_decided(tmp_path) -> None:
    "The same sequential rule from a spec file and the command line (`stop: decided`), and recorded on the MLflow run."
    import csv, json, os, subprocess, sys
    from pathlib import Path
    import llmops_bench as lb
    with (tmp_path/"cases.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["id", "context", "question", "answer"]); w.writeheader(); w.writerows(_cases(1000))
    (tmp_path/"spec.yaml").write_text("prompts: [\"{{context}}\\n\\nQuestion: {{question}}\"]\nmodels: [bench/lead, bench/extractive]\n"
                                      "dataset: cases.csv\nscorers: [contains]\nstop: {when: decided, batch: 25, min_cases: 50}\n")
    env = {**os.environ, "LLMOPS_BENCH_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    cli = Path(sys.executable).parent/"llmops-bench"
    r = subprocess.run([str(cli), "eval", str(tmp_path/"spec.yaml"), "--json", "--no-progress"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads(r.stdout)["sequential"]
    print(f"spec run: {record['stopped_because']} after {record['cases_used']} of {record['cases_total']} cases")
    assert record["stopped_because"] == "decided" and record["cases_used"] == 50 and record["calls_not_sent"] == 2 * 950
    logged = lb.load(json.loads(r.stdout)["run_id"], lb.load_settings(tmp_path))
    assert logged.spec["sequential"]["cases_used"] == 50 and len(logged.results) == 100
