"""Redaction (issue 13, must-show 4): PII and secret sentinels put in the dataset, the prompt and (through bench/echo, which
answers with its rendered prompt) the outputs never reach the MLflow store (the sqlite file's bytes and every artifact file),
the response cache or a job's executed notebook when `redact = pii`; with the default `secrets` only the key (and the team's
own pattern) is gone. The Results in memory keep the originals. Then each detector, with what it must leave alone.

Each project is a temporary root of its own (settings.ini, embedded MLflow store, cache), so the scans see only this test's files.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import llmops_bench as lb
from llmops_bench import jobs, monitor, tracking
from llmops_bench.core import ConfigError, Settings, load_settings
from llmops_bench.governance import Redactor, iban_valid, luhn_valid, redactor

# each sentinel, with every spelling a store might keep it in (a card without its spaces, say)
SENTINELS = {
    "email": ["ana.lima@example.org"],
    "phone": ["+44 20 7946 0958", "+442079460958", "7946 0958"],
    "card": ["4111 1111 1111 1111", "4111111111111111"],
    "iban": ["GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"],
    "key": ["sk-proj-SENTINELabcdefghijklmnop0123"],
    "custom": ["EMP-424242"],
}
TICKET = "Ticket from ana.lima@example.org, phone +44 20 7946 0958, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32."
PROMPT = "Agent EMP-424242 (key sk-proj-SENTINELabcdefghijklmnop0123) answers: {{ticket}}"
CASES = [{"id": "t1", "ticket": TICKET, "answer": "ana.lima@example.org"},
         {"id": "t2", "ticket": "no personal data here", "answer": "nothing"}]


def project(root: Path, mode: str | None) -> Settings:
    "A project root with its settings.ini: `mode` (None: the default) and the team's pattern for employee ids."
    root.mkdir(parents=True, exist_ok=True)
    lines = ["[llmops-bench]", *([f"redact = {mode}"] if mode else []), "redact_patterns =", r"    EMP-\d{6}"]
    (root/"settings.ini").write_text("\n".join(lines) + "\n")
    return load_settings(root)


def found(root: Path) -> dict[str, list[str]]:
    "For each sentinel, the files under `root` whose bytes hold it in any spelling (the sqlite store and its WAL included)."
    hits: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "settings.ini"):
        data = path.read_bytes()
        for name, spellings in SENTINELS.items():
            if any(s.encode() in data for s in spellings): hits.setdefault(name, []).append(str(path.relative_to(root)))
    return hits


def evaluate(settings: Settings):
    prompt = tracking.register_prompt(lb.Prompt("support", PROMPT), settings=settings)   # the template in the prompt registry too
    return lb.evaluate(prompt, "bench/echo", CASES, scorers=[lb.scorers.contains(column="answer")], trace=True,
                       progress=False, experiment="redaction", settings=settings)


def job_notebook(folder: Path) -> Path:
    "An evaluation notebook whose parameter, printed output and logged evaluation hold every sentinel."
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('ticket = "none"\nexperiment = "none"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import llmops_bench as lb\n"
        f"ev = lb.evaluate(lb.Prompt('support', {PROMPT!r}), 'bench/echo', [{{'id': 'j1', 'ticket': ticket}}],\n"
        "                 scorers=[lb.scorers.length(max_chars=10000)], progress=False,\n"
        "                 experiment=experiment)\n"
        "print(ev.results.output[0])")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder/"support.ipynb"))
    return folder/"support.ipynb"


@pytest.fixture(scope="module")
def pii(tmp_path_factory):
    "A project with redact = pii: an evaluation (with traces and a registered prompt) and a job, both holding every sentinel."
    base = tmp_path_factory.mktemp("pii")
    settings = project(base/"project", "pii")
    ev = evaluate(settings)
    report = jobs.run(job_notebook(base/"source"), {"ticket": TICKET}, experiment="redaction-job", settings=settings)
    return settings, ev, report


def test_pii_mode_leaves_no_sentinel_in_the_store_artifacts_cache_or_executed_notebook(pii):
    settings, ev, report = pii
    assert report.status == "FINISHED" and len(report.evaluations) == 1, (report.error, report.evaluations)
    root = settings.root
    db = root/"mlflow"/"mlflow.db"
    artifacts = [p for p in (root/"mlflow"/"artifacts").rglob("*") if p.is_file()]
    cache = root/settings.cache_dir
    executed = [report.output, report.html]
    # what is scanned exists and holds the run's content (a scan of empty files would prove nothing)
    assert db.stat().st_size > 0 and len(artifacts) >= 10 and (cache/"responses.sqlite").is_file()
    assert all(p is not None and p.is_file() and str(p).startswith(str(cache)) for p in executed)
    assert b"[EMAIL]" in db.read_bytes() and any(b"[CARD]" in p.read_bytes() for p in artifacts)
    assert "[IBAN]" in report.output.read_text() and "[PHONE]" in report.html.read_text()
    assert {"results.json", "cases.html", "results.parquet", "spec.json", "support.ipynb", "support.html"} <= {p.name for p in artifacts}
    assert found(root) == {}, found(root)


def test_the_results_in_memory_and_the_job_report_keep_the_originals(pii):
    settings, ev, report = pii
    out = ev.results.set_index("case_id").output["t1"]
    for spellings in SENTINELS.values(): assert spellings[0] in out, (spellings[0], out)
    assert ev.results.set_index("case_id")["input.ticket"]["t1"] == TICKET
    assert report.parameters["ticket"] == TICKET


def test_the_cache_keeps_what_redaction_leaves_alone_and_resends_the_rest(pii):
    settings, ev, _ = pii
    plain = lb.Prompt("plain", "Reply to: {{ticket}}")   # only case t1 holds personal data
    first = lb.evaluate(plain, "bench/echo", CASES, progress=False, log=False, settings=settings)
    again = lb.evaluate(plain, "bench/echo", CASES, progress=False, log=False, settings=settings)
    assert dict(zip(again.results.case_id, again.results.cached)) == {"t1": False, "t2": True}
    assert list(again.results.output) == list(first.results.output)   # the same answers, never a redacted one from the cache
    assert again.results.output[0] == f"Reply to: {TICKET}"


def test_the_mode_is_recorded_on_every_run_and_in_the_audit(pii):
    settings, ev, report = pii
    client = tracking.mlflow_client(settings)
    for run_id in (ev.run_id, report.run_id, *report.evaluations):
        assert client.get_run(run_id).data.tags[tracking.REDACT_TAG] == "pii"
    audit = monitor.audit("redaction", settings=settings)
    assert list(audit.redact) == ["pii"]


def test_the_default_secrets_mode_removes_the_key_and_keeps_the_personal_data(tmp_path):
    settings = project(tmp_path/"project", None)
    assert settings.redact == "secrets"
    ev = evaluate(settings)
    hits = found(settings.root)
    assert "key" not in hits and "custom" not in hits, hits                     # secrets and the team's pattern: always
    assert {"email", "phone", "card", "iban"} <= set(hits), hits                # personal data: only with redact = pii
    assert any(h.startswith("mlflow") for h in hits["email"])
    assert tracking.mlflow_client(settings).get_run(ev.run_id).data.tags[tracking.REDACT_TAG] == "secrets"


def test_the_environment_variable_sets_the_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_BENCH_REDACT", "pii")
    assert project(tmp_path, None).redact == "pii"
    monkeypatch.setenv("LLMOPS_BENCH_REDACT", "off")
    with pytest.raises(ConfigError, match="secrets are always redacted, so there is no 'off'"): load_settings(tmp_path)


# --- each detector: what it finds, and what it must leave alone -------------------------------------------------------

PII = Redactor("pii")
SECRETS = Redactor("secrets")


@pytest.mark.parametrize("text, expected", [
    ("write to ana.lima@example.org today", "write to [EMAIL] today"),
    ("a.b+tag@mail.example.co.uk", "[EMAIL]"),
    ("call +44 20 7946 0958 now", "call [PHONE] now"),
    ("call +14155550132", "call [PHONE]"),
    ("call (415) 555-0132 or 415.555.0132", "call [PHONE] or [PHONE]"),
    ("card 4111 1111 1111 1111", "card [CARD]"),
    ("card 5500-0000-0000-0004", "card [CARD]"),
    ("amex 378282246310005", "amex [CARD]"),
    ("card 4111111111111111 then 123", "card [CARD] then 123"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN [IBAN]"),
    ("IBAN DE89370400440532013000", "IBAN [IBAN]"),
    ("IBAN FR7630006000011234567890189", "IBAN [IBAN]"),
])
def test_each_pii_detector_finds_its_kind(text, expected):
    assert PII(text) == expected
    assert SECRETS(text) == text   # personal data is left alone by the default mode


@pytest.mark.parametrize("text", [
    "order 4111 1111 1111 1112",              # 16 digits failing Luhn
    "order 1234567890123456",                 # and another
    "ref GB82 WEST 1234 5698 7654 33",        # an IBAN shape failing mod 97
    "ref DE00370400440532013000",
    "2026-12-01 07:23:52.123456+00:00",       # timestamps, dates, epoch milliseconds
    "started 1733030400000",
    "cost 0.000123456789 USD, latency 1.234567890 s",
    "version 1.2.3-456-7890",
    "git@github",                             # no domain: not an address
    "555 0132",                               # too short for a phone number
])
def test_pii_detectors_leave_look_alikes_alone(text):
    assert PII(text) == text


@pytest.mark.parametrize("secret", [
    "sk-proj-SENTINELabcdefghijklmnop0123", "sk-ant-api03-abcdefghijklmnopqrstuv", "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1" * 18, "github_pat_" + "A1b2" * 6, "xoxb-123456789012-abcdefghij", "AIza" + "B" * 35, "hf_" + "x1" * 16,
    "sk_live_abcdefghijklmnop1234",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_each_key_shape_is_redacted_in_every_mode(secret):
    for red in (SECRETS, PII): assert red(f"the key is {secret}.") == "the key is [SECRET]."


@pytest.mark.parametrize("text, expected", [
    ("api_key=0123456789abcdef0123", "api_key=[SECRET]"),
    ('{"token": "dGhpcyBpcyBhIHNlY3JldCB0b2tlbjEy"}', '{"token": "[SECRET]"}'),
    ("OPENAI_API_KEY = 'AbCdEf0123456789AbCdEf'", "OPENAI_API_KEY = '[SECRET]'"),
    ("password: hunter2hunter2hunter2x1", "password: [SECRET]"),
    ("Authorization: Bearer abcdefghijklmnop12345", "Authorization: Bearer [SECRET]"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", "[SECRET]"),
    # left alone: counts named like tokens, ordinary words after "key", short values, digests that are not after a key name
    ("max_tokens=1024 prompt_tokens: 123456789012345678", None),
    ("the key: understanding everything", None),
    ("api_key=short1", None),
    ("results_digest 0123456789abcdef0123456789abcdef", None),
])
def test_values_after_key_names(text, expected):
    assert SECRETS(text) == (text if expected is None else expected)


def test_known_secret_values_and_custom_patterns(monkeypatch):
    monkeypatch.setenv("TEAM_SERVICE_TOKEN", "plain-words-SENTINEL")   # a credential-named variable's value, whatever its shape
    red = redactor(Settings(redact_patterns="EMP-\\d{6}\nORD-[0-9]{4,}"))
    assert red("plain-words-SENTINEL for EMP-424242 and ORD-12345, not EMP-42") == "*** for [REDACTED] and [REDACTED], not EMP-42"
    with pytest.raises(ConfigError, match="not a valid regular expression"): Settings(redact_patterns="EMP-(")


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_a_notebook_keeps_its_images_and_structure():
    nb = {"cells": [{"cell_type": "code", "source": "x = 'ana.lima@example.org'", "outputs": [
        {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo+14155550132/AA", "text/html": "<b>ana.lima@example.org</b>"}},
        {"output_type": "error", "ename": "ValueError", "evalue": "bad card 4111111111111111", "traceback": ["... +44 20 7946 0958"]}]}],
          "metadata": {"papermill": {"parameters": {"ticket": TICKET}}}}
    done = PII.value(nb)
    cell = done["cells"][0]
    assert cell["source"] == "x = '[EMAIL]'"
    assert cell["outputs"][0]["data"] == {"image/png": "iVBORw0KGgo+14155550132/AA", "text/html": "<b>[EMAIL]</b>"}
    assert (cell["outputs"][1]["evalue"], cell["outputs"][1]["traceback"]) == ("bad card [CARD]", ["... [PHONE]"])
    assert json.dumps(done["metadata"]).count("[") == 4   # email, phone, card, IBAN in the parameter
