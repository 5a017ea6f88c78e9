"""The conformance report as its readers see it: report.json against dropnorm/report/schema.json,
report.md and report.html from real audits (a defective implementation and torch),
the standalone reproduction scripts, junit.xml, `dropnorm report` and `dropnorm compare`,
and the HTML page opened in headless Chromium.

The audits run once per session (module fixtures), with the quick profile and a few
clauses, so this module costs seconds, not minutes.

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their
own (clause markers are for property tests); the clause IDs they assert on are those the
audited implementations are blamed for.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from dropnorm.report import compare, files, html, markdown, model
from tests.conftest import ROOT, audit, clause_entry, dropnorm_argv, run_dropnorm

DEFECT = "torch-module:dropnorm.zoo.defects.no_inverted_scaling"
CLAUSES = ["DO-TRAIN-01", "DO-EVAL-01", "DO-P0-01"]


def audit_clauses(impl: str, directory: pathlib.Path):
    """The quick audit of `impl` on CLAUSES into `directory` (once per module, by the fixtures below)."""
    return audit(impl, directory, *[f"--clause={c}" for c in CLAUSES], timeout=300)


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("defect")
    return directory, audit_clauses(DEFECT, directory)


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("torch")
    return directory, audit_clauses("torch", directory)


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(files.schema())


def test_defective_audit_exits_1_and_reports_the_failing_clause(defect_run):
    """A defect violating DO-TRAIN-01: exit 1, and the clause is failed in report.json with
    observed and expected values, the counterexample and a reproduction."""
    directory, run = defect_run
    assert run.returncode == 1, run.stderr
    assert re.search(r"fail\s+wrong-value\s+DO-TRAIN-01\s+DO-TRAIN-01/\S+:", run.stderr), run.stderr
    report = files.load_report(directory)  # validates against dropnorm/report/schema.json
    assert report["complete"] and not report["conformant"]
    assert report["selection"]["clauses"] == sorted(CLAUSES)
    assert [e["id"] for e in report["clauses"]] == [c for c in model.clauses() if c in CLAUSES]
    e = clause_entry(report, "DO-TRAIN-01")
    assert e["status"] == "fail" and e["level"] == "MUST"
    f = e["failure"]
    assert f["condition"] == "scale" and f["observed"] and f["expected"]
    # a generated example, or one of the statistical tests' explicit examples (p = 0.5 first)
    assert f["counterexample"] and re.match(r"Failing (test case|explicit example)", f["counterexample"])
    assert "construct('Dropout', 'dropout'" in f["reproduction"] and "forward(L[" in f["script"]
    assert f["script_file"] == "repro-DO-TRAIN-01.py"
    assert clause_entry(report, "DO-EVAL-01")["status"] == "pass"
    assert report["summary"]["fail"] >= 1 and report["summary"]["total"] == len(CLAUSES)
    assert report["implementation"]["name"] == DEFECT


def test_audit_replays_each_reproduction_alone(defect_run):
    """After the audit, each failure's script is run in a fresh process (dropnorm/report/replay.py):
    the report says it reproduces alone, in report.json, report.md and the summary line."""
    directory, run = defect_run
    report = files.load_report(directory)
    alone = clause_entry(report, "DO-TRAIN-01")["failure"]["standalone"]
    assert alone["outcome"] == "reproduced" and alone["exit"] == 1 and "REPRODUCED" in alone["tail"], alone
    assert report["run"]["replay_s"] >= alone["seconds"] > 0
    assert "repro-DO-TRAIN-01.py, reproduces alone]" in run.stderr
    assert "run alone after the audit: reproduces when run alone" in (directory / "report.md").read_text()


def test_replay_tells_a_script_that_does_not_reproduce(tmp_path):
    """A script that exits 0 (the case alone behaves correctly: the audit's failure depended on the
    process's history) is reported not-reproduced; exit 1 without REPRODUCED (a traceback) is an error."""
    from dropnorm.report import replay
    cases = {"ok.py": ("print('not reproduced: every value is within the tolerance')", "not-reproduced"),
             "bad.py": ("print('REPRODUCED: 1 of 1'); raise SystemExit(1)", "reproduced"),
             "crash.py": ("import no_such_module_xyz", "error")}
    (tmp_path / "slow.py").write_text("import time; time.sleep(30)\n")
    (tmp_path / "cwd.py").write_text("import os, sys; print('REPRODUCED', os.getcwd() == sys.path[0]); sys.exit(1)\n")
    with replay.ForkServer() as server:  # the same outcomes from a forked child as from a fresh interpreter
        for run in (replay.run_script, server.run):
            for name, (code, outcome) in cases.items():
                (tmp_path / name).write_text(code + "\n")
                got = run(tmp_path / name, timeout_s=60)
                assert got["outcome"] == outcome, (run, name, got)
            assert "does NOT reproduce" in replay.describe(run(tmp_path / "ok.py", 60))
            assert run(tmp_path / "slow.py", timeout_s=1)["outcome"] == "timed-out"
            assert run(tmp_path / "cwd.py", 60)["tail"].endswith("REPRODUCED True"), run


def test_every_format_names_the_failure(defect_run):
    directory, _ = defect_run
    md = (directory / "report.md").read_text()
    assert "not conformant: 1 clause failing (DO-TRAIN-01)" in md and "| FAIL | wrong-value | DO-TRAIN-01 | MUST | Do fail |" in md
    assert "### DO-TRAIN-01" in md and "forward(L[" in md and "repro-DO-TRAIN-01.py" in md
    page = (directory / "report.html").read_text()
    assert 'id="f-DO-TRAIN-01"' in page and "forward(L[" in page and "not conformant" in page
    suite = ET.parse(directory / "junit.xml").getroot()
    failed = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed, "junit.xml records no failure"
    assert any(p.get("name") == "clause" and p.get("value") == "DO-TRAIN-01"
               for case in failed for p in case.iter("property"))
    assert any("DO-TRAIN-01/scale" in case.find("failure").get("message", "") for case in failed)


def test_reproduction_script_is_standalone_and_runs(defect_run, tmp_path):
    """repro-<clause>.py needs torch and numpy only: it runs from an empty directory with
    dropnorm's source off the path, recomputes the compared quantity and exits 1 (the failure
    reproduces), printing observed against expected."""
    directory, _ = defect_run
    script = directory / "repro-DO-TRAIN-01.py"
    text = script.read_text()
    assert "import dropnorm" not in text and "from dropnorm" not in text.replace("from dropnorm.zoo", "")
    copy = tmp_path / script.name
    shutil.copy(script, copy)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", str(copy)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env)
    # -I isolates from the user site and cwd; the defect module is imported by name from the
    # installed dropnorm package, which is what a user who has the implementation has too
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "REPRODUCED" in run.stdout and "observed" in run.stdout and "expected" in run.stdout


def test_selected_clauses_that_hold_exit_0_and_are_never_called_conformant(torch_run):
    """A --clause selection whose clauses all hold exits 0, but report.json never says conformant (most of
    the spec did not run) and the headline says what was selected (issue 25, partial selections)."""
    directory, run = torch_run
    assert run.returncode == 0, run.stderr
    report = files.load_report(directory)
    assert not report["conformant"] and report["complete"]
    assert report["verdict"].startswith("the selected clauses hold: 3 of ") and "not a conformance verdict" in \
        report["verdict"]
    assert {e["status"] for e in report["clauses"]} == {"pass"}
    assert all(t["examples"] >= 1 for e in report["clauses"] for t in e["tests"])
    env = report["environment"]
    assert env["profile"] == "quick" and env["derandomized"] and env["device"] == "cpu"
    assert "float64" in env["dtypes"] and "contiguous" in env["layouts"]
    assert report["provenance"]["spec_version"] and report["environment"]["torch"]["version"]
    tol = clause_entry(report, "DO-TRAIN-01")["tolerance"]
    assert tol["checks"] >= 1 and 0 <= tol["max_error_over_tolerance"] <= 1


def test_compare_reports_regressions_and_fixes(torch_run, defect_run):
    before, after = torch_run[0], defect_run[0]
    run = run_dropnorm("compare", str(before), str(after))
    assert run.returncode == 1 and "DO-TRAIN-01 (MUST): pass -> fail" in run.stdout
    run = run_dropnorm("compare", str(after), str(before))
    assert run.returncode == 0 and "fixed: 1" in run.stdout
    same = compare.compare(files.load_report(before), files.load_report(before))
    assert not any(same.values())


def test_report_command_rerenders_from_json(defect_run, tmp_path):
    directory, _ = defect_run
    shutil.copy(directory / "report.json", tmp_path / "report.json")
    run = run_dropnorm("report", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "report.md").read_text() == (directory / "report.md").read_text()
    assert (tmp_path / "report.html").is_file()


def test_report_command_rejects_an_invalid_report(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"schema_version": "1.0", "clauses": "nope"}))
    run = run_dropnorm("report", str(tmp_path))
    assert run.returncode == 2 and "not a valid report" in run.stderr
    run = run_dropnorm("report", str(tmp_path / "missing"))
    assert run.returncode == 2 and "no report at" in run.stderr and "Traceback" not in run.stderr


HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def hostile_report(report: dict) -> dict:
    """The report with an implementation's strings replaced by markup."""
    report = json.loads(json.dumps(report))
    report["implementation"]["name"] = HOSTILE
    for e in report["clauses"]:
        e["reason"] = HOSTILE
        if e["failure"]:
            for key in ("message", "observed", "expected", "reproduction", "script", "counterexample"):
                e["failure"][key] = HOSTILE
        e["errors"] = [{"test": HOSTILE, "error": HOSTILE}]
        e["output"] = [{"test": "t", "text": HOSTILE}]
    return report


def test_html_and_markdown_escape_implementation_strings(defect_run):
    report = hostile_report(files.load_report(defect_run[0]))
    page = html.render(report)
    assert "<script>document" not in page and "<img src=x" not in page
    assert "&lt;script&gt;document.title=" in page
    md = markdown.render(report)
    assert "<script>" not in md.replace("```", "").split("<details>")[0]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dump_dom(path: pathlib.Path, tmp_path: pathlib.Path) -> tuple[str, str]:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the HTML report in a browser: install Debian's chromium (.ci/run does)")
        pytest.skip("no chromium on this machine (apt-get install chromium); the HTML browser test needs one")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=3000", "--dump-dom", path.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, run.stderr


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_html_opens_in_headless_chromium_without_errors(defect_run, tmp_path):
    """The page's script runs (it marks the body ready), reports no error, and the
    filters show every clause; nothing is fetched (CSP: default-src 'none')."""
    dom, stderr = _dump_dom(defect_run[0] / "report.html", tmp_path)
    assert 'data-ready="yes"' in dom, "the page's script did not finish"
    assert '<pre id="js-errors" hidden="">' in dom, "the page recorded a script error"
    assert f"{len(CLAUSES)} of {len(CLAUSES)} clauses shown" in dom
    assert not _console_errors(stderr), _console_errors(stderr)


def test_hostile_strings_stay_text_in_the_browser(defect_run, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(html.render(hostile_report(files.load_report(defect_run[0]))))
    dom, stderr = _dump_dom(page, tmp_path)
    assert "<title>pwned</title>" not in dom, "an implementation's string ran as a script"
    assert "<img src=\"x\"" not in dom and "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert not _console_errors(stderr), _console_errors(stderr)


def test_matrix_from_reports(torch_run, defect_run, tmp_path):
    """`dropnorm matrix --from A --from B`: one column per implementation, its convention in the
    top rows, one row per clause audited, the defect's failure marked."""
    run = run_dropnorm("matrix", "--from", str(torch_run[0]), "--from", str(defect_run[0]), "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    md = (tmp_path / "matrix.md").read_text()
    assert "| torch " in md and "no_inverted_scaling" in md
    assert "| momentum weighs | new batch | new batch |" in md
    assert "| DO-TRAIN-01 (MUST) | pass | FAIL |" in md
    # both audits are --clause selections: never 'conformant', the cell says whether the selection holds
    assert "| **conformant** | selection holds | **selection fails** |" in md
    # each column's audit: profile and its own wall time, and the command that reproduces it
    assert "| audit | quick, " in md and "- torch: `dropnorm audit --impl" in md, md[-1500:]
    assert "--report-dir" not in md.split("reproduced by")[1]
    # a committed report may be compressed (docs/matrix-run/reports/<impl>/report.json.gz)
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "report.json.gz").write_bytes(gzip.compress((torch_run[0] / "report.json").read_bytes()))
    assert files.load_report(packed) == files.load_report(torch_run[0])
    page = (tmp_path / "matrix.html").read_text()
    assert '<td class="fail" title="DO-TRAIN-01/scale' in page


SLOW_REPLAY = """import os, sys, time

import torch

if os.path.basename(sys.argv[0]).startswith("repro-"):
    time.sleep(120)  # only when replayed: the audit is interrupted while this script runs


class Dropout(torch.nn.Dropout):
    def forward(self, x):
        return torch.nn.functional.dropout(x, self.p, self.training) * (1 - self.p) if self.training else x
"""


def test_sigint_while_replaying_keeps_the_verdict_and_the_report(tmp_path):
    """Ctrl-C during the replay phase (issue 25): exit 130, the verdict line is printed, and report.json is
    valid, with the failure it found and the replay marked interrupted; no traceback."""
    import signal
    import time
    (tmp_path / "slow_replay.py").write_text(SLOW_REPLAY)
    cmd = dropnorm_argv("audit", f"--impl=torch-module:{tmp_path / 'slow_replay.py'}", "--profile=quick", "--jobs=1",
                        f"--report-dir={tmp_path / 'r'}", "--clause=DO-TRAIN-01")
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            stdin=subprocess.DEVNULL)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "running the reproduction scripts" in line:
            time.sleep(3)  # the script is now sleeping in the replay
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=120)
    err = "".join(lines) + rest
    assert proc.returncode == 130, err
    assert "not conformant: 1 clause failing (DO-TRAIN-01)" in err and "Traceback" not in err, err
    report = files.load_report(tmp_path / "r")
    assert report["run"]["replay_interrupted"] and clause_entry(report, "DO-TRAIN-01")["status"] == "fail"


def test_a_reaudit_keeps_the_previous_run_and_compare_takes_one_directory(defect_run, tmp_path):
    """The run before the latest is kept in DIR/previous/ (files.keep_previous, called when an audit prepares
    its directory), and `dropnorm compare DIR` compares the two (issue 25: the before is never lost)."""
    from dropnorm.run.audit import prepare_dir
    directory = tmp_path / "r"
    shutil.copytree(defect_run[0], directory)
    run = run_dropnorm("compare", str(directory))
    assert run.returncode == 2 and "holds one run only" in run.stderr, run.stderr
    prepare_dir(directory)  # what a re-audit does first: the last run moves to previous/
    assert (directory / "previous" / "report.json").is_file() and (directory / "previous" / "repro-DO-TRAIN-01.py").is_file()
    assert not (directory / "report.json").exists()
    fixed = files.load_report(directory / "previous")
    for e in fixed["clauses"]:
        e.update(status="pass", reason="", failure=None, severity=None)
    fixed["verdict"] = "conformant"
    (directory / "report.json").write_text(json.dumps(fixed))
    run = run_dropnorm("compare", str(directory))
    assert run.returncode == 0 and "fixed: 1" in run.stdout and "DO-TRAIN-01 (MUST): fail -> pass" in run.stdout, run.stdout


def test_compare_names_a_failure_that_moved_to_another_case(defect_run):
    """A clause failing in both reports, on another condition or another case, is 'changed', not unchanged."""
    before = files.load_report(defect_run[0])
    after = json.loads(json.dumps(before))
    entry = clause_entry(after, "DO-TRAIN-01")
    dtype = next(d for d in ("bfloat16", "float64", "float32", "float16") if d in entry["failure"]["message"])
    other = "float64" if dtype == "bfloat16" else "bfloat16"
    entry["failure"]["message"] = entry["failure"]["message"].replace(dtype, other)
    entry["reason"] = entry["reason"].replace(dtype, other)
    diff = compare.compare(before, after)
    assert [r["id"] for r in diff["changed"]] == ["DO-TRAIN-01"] and "another case" in diff["changed"][0]["reason"]
    entry["failure"]["condition"] = "zero-or-scaled"
    assert "condition moved: scale -> zero-or-scaled" in compare.compare(before, after)["changed"][0]["reason"]
    assert not any(compare.compare(before, before).values())
