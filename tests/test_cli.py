"""`dropnorm` usage errors: exit status 2 and one line saying what to fix, never a traceback;
and an interrupted audit that leaves a valid report marked incomplete.

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their
own (clause markers are for property tests); the clause IDs they assert on are those the
audited implementations are blamed for.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from dropnorm.run import cli
from dropnorm.report import files
from dropnorm.spec import clauses
from tests.conftest import ROOT, audit, dropnorm_argv


def run_cli(capsys, *args) -> tuple[int, str]:
    try:
        status = cli.main(list(args))
    except SystemExit as e:  # argparse's own errors
        status = e.code
    return status, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def module_file(tmp_path):
    def write(source: str) -> str:
        path = tmp_path / "layers.py"
        path.write_text(source)
        return str(path)
    return write


@pytest.mark.parametrize("args,expected", [
    (["audit", "--impl", "tensorflow-ish"], "unknown implementation 'tensorflow-ish'"),
    (["audit", "--impl", "torch-module:"], "torch-module: needs a target"),
    (["audit", "--impl", "torch-module:/nonexistent/layers.py"], "no such file"),
    (["audit", "--impl", "torch-module:no_such_module_xyz"], "No module named 'no_such_module_xyz'"),
    (["audit", "--clause", "DO-NOPE-01"], "unknown clause DO-NOPE-01"),
    (["audit", "--profile", "fast"], "invalid choice: 'fast'"),
    (["audit", "--layer", "conv"], "invalid choice: 'conv'"),
    (["audit", "--jobs", "zero"], "--jobs must be a positive number"),
    (["audit", "--deviations", "/nonexistent.toml"], "deviations file not found"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["compare", "/nonexistent-a", "/nonexistent-b"], "no report at"),
    # a path without its prefix (issue 25): say what was meant
    (["audit", "--impl", "my_layers.py"], "did you mean --impl torch-module:my_layers.py?"),
    (["audit", "--impl", "pkg/layers.py"], "did you mean --impl torch-module:pkg/layers.py?"),
    (["matrix", "--impl", "my_layers.py"], "did you mean --impl torch-module:my_layers.py?"),
])
def test_usage_errors_exit_2_with_one_line(capsys, args, expected):
    status, err = run_cli(capsys, *args)
    assert status == 2
    assert expected in one_line(err)


@pytest.mark.parametrize("source,expected", [
    ("import torch\nraise RuntimeError('boom at import')\n", "importing it raised RuntimeError: boom at import"),
    ("import not_a_real_dependency\n", "No module named 'not_a_real_dependency'"),
    ("def broken(:\n", "syntax error"),
    ("import torch\nclass Dropout(torch.nn.Module):\n    def __init__(self, rate):\n        super().__init__()\n",
     "Dropout cannot be constructed with torch.nn's keywords"),
    ("x = 1\n", "provides none of Dropout"),
])
def test_implementations_that_cannot_be_loaded_exit_2(capsys, module_file, source, expected):
    status, err = run_cli(capsys, "audit", "--impl", "torch-module:" + module_file(source))
    assert status == 2
    assert expected in one_line(err)


def test_a_missing_package_is_named(capsys, module_file, tmp_path, monkeypatch):
    """A file (or a module) that imports a package that is not installed: the error names that package and
    does not send the user to check the target's own name (issue 25)."""
    status, err = run_cli(capsys, "audit", "--impl", "torch-module:" + module_file("import torch\nimport nonexistent_pkg_xyz.sub\n"))
    line = one_line(err)
    assert status == 2 and "layers.py imports 'nonexistent_pkg_xyz'" in line and "check the module name" not in line
    package = tmp_path / "userpkg_issue25"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text("import nonexistent_pkg_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status, err = run_cli(capsys, "audit", "--impl", "torch-module:userpkg_issue25.layers")
    line = one_line(err)
    assert status == 2 and "userpkg_issue25.layers imports 'nonexistent_pkg_xyz'" in line, line
    # the target itself not found: still "check the module name"
    status, err = run_cli(capsys, "audit", "--impl", "torch-module:userpkg_issue25.nolayers")
    assert status == 2 and "check the module name" in one_line(err)


def test_a_sibling_module_off_the_path_is_named(capsys, tmp_path):
    (tmp_path / "helpers_issue25.py").write_text("X = 1\n")
    target = tmp_path / "layers.py"
    target.write_text("from helpers_issue25 import X\n")
    status, err = run_cli(capsys, "audit", "--impl", f"torch-module:{target}")
    line = one_line(err)
    assert status == 2 and "'helpers_issue25' lies next to it" in line and f"PYTHONPATH={tmp_path}" in line, line


NUMPY_LAYERS = """import torch


class Dropout(torch.nn.Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x.detach().numpy() * 1.0


class BatchNorm2d(torch.nn.BatchNorm2d):
    def forward(self, x):
        return super().forward(x).detach().numpy()
"""


def test_layers_returning_numpy_are_one_line_up_front(capsys, module_file):
    """Layers whose forward returns numpy arrays: one line before the suite runs (exit 2), not an error in
    every test of theirs."""
    status, err = run_cli(capsys, "audit", "--impl", "torch-module:" + module_file(NUMPY_LAYERS), "--profile=quick")
    line = one_line(err)
    assert status == 2 and "Dropout.forward returned numpy.ndarray in training mode, not a torch.Tensor" in line
    # exit 2 with this one line is the up-front check's answer: had the suite run, each test would have
    # been an error and the audit would have ended in a report (exit 1), not here
    assert "BatchNorm2d.forward returned numpy.ndarray" in line and "must return a torch.Tensor" in line


def test_up_front_check_after_parallel_torch_code_in_the_same_process(capsys, module_file):
    """The up-front check runs the layers in a forked child. A fork of a process whose torch thread pool has run
    hangs at its first parallel region, so inside a pytest worker that had run other tests the one-line error
    became a full audit of errors (CI, 2026-12-07); the child now runs on one thread."""
    import torch
    a = torch.randn(1000, 1000)
    (a @ a).sum()
    torch.nn.functional.batch_norm(torch.randn(64, 8, 32, 32), None, None, training=True)
    status, err = run_cli(capsys, "audit", "--impl", "torch-module:" + module_file(NUMPY_LAYERS), "--profile=quick",
                          "--timeout=10")
    # exit 2 with the one-line error means the check answered: had the child hung, the check would have given up
    # at --timeout and the audit would have run every test instead
    assert status == 2 and "must return a torch.Tensor" in one_line(err)


def test_unwritable_report_dir_exits_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, err = run_cli(capsys, "audit", "--report-dir", str(blocker / "sub"))
    assert status == 2 and "cannot write the report directory" in one_line(err)


def test_cuda_without_a_gpu_exits_2(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status, err = run_cli(capsys, "audit", "--device", "cuda")
    assert status == 2 and "no CUDA device" in one_line(err)


def test_clauses_lists_every_clause(capsys):
    status = cli.main(["clauses", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert status == 0 and {r["id"] for r in rows} == set(clauses())
    cli.main(["clauses", "--layer", "dropout2d"])
    out = capsys.readouterr().out.splitlines()
    assert out and all(" dropout2d " in line for line in out)


def test_interrupted_audit_leaves_a_valid_incomplete_report(tmp_path):
    """Ctrl-C during an audit: exit 130 and report.json valid, complete=false, with the
    tests that finished before the interruption."""
    # every layer (not only dropout's 43 tests): the audit must still be running when the signal lands, which
    # on a loaded machine the last few fast dropout tests did not guarantee (the audit ended with exit 0)
    proc = subprocess.Popen(dropnorm_argv("audit", "--impl", "reference", "--profile=ci", "--jobs=1",
                                          f"--report-dir={tmp_path}"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # Ctrl-C's default disposition: a test run started in the background (`cmd &`
                            # without job control) inherits SIGINT ignored, and the audit rightly keeps it so
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = tmp_path / ".results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count('"event": "test"') >= 12:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the audit finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    report = files.load_report(tmp_path)
    assert report["complete"] is False
    assert report["run"]["tests"] >= 2
    assert any(e["status"] == "pass" for e in report["clauses"])
    assert "INCOMPLETE" in (tmp_path / "report.md").read_text()


def test_audit_in_which_nothing_could_be_tested_exits_2(module_file, tmp_path):
    """A module with only Dropout, audited for batch norm: every clause is not provided."""
    target = module_file("from torch.nn import Dropout  # noqa: F401\n")
    run = audit(f"torch-module:{target}", tmp_path / "report", "--layer=batchnorm", "--quiet", timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "nothing could be tested" in run.stderr.splitlines()[-1]
    report = files.load_report(tmp_path / "report")
    assert {e["status"] for e in report["clauses"]} == {"not-provided"}


def test_selfcheck_exits_1_on_a_survivor_or_false_alarm(monkeypatch, capsys):
    """dropnorm selfcheck's verdict, on audits faked at the boundary (tests/test_zoo.py runs the real ones)."""
    import io

    from dropnorm.run import selfcheck
    from dropnorm.zoo import meta

    entries = meta.catalogue()
    defect = next(e for e in entries if e.kind == "defect")
    variant = next(e for e in entries if e.kind == "variant")

    def fake(survivor: bool, alarm: bool):
        def run_groups(entries, workdir, **kw):
            out = {}
            for e in entries:
                a = meta.Audit(e.spec, tests=1)
                if e.kind == "defect" and not (survivor and e.spec == defect.spec):
                    a.failed, a.violated, a.fail_seconds = ["t"], {next(iter(e.clauses)): ["c"]}, 0.1
                    a.scripts = {next(iter(e.clauses)): "reproduces"}
                if e.kind == "variant" and alarm and e.spec == variant.spec:
                    a.failed, a.violated = ["t"], {"BN-TRAIN-01": ["output"]}
                if e.kind == "pair":
                    a.failed, a.violated = ["t"], {c: ["c"] for c in e.clauses}
                out[e.spec] = a
            return out
        return run_groups

    import types
    monkeypatch.setattr(meta, "run_script", lambda script, *a, **k: types.SimpleNamespace(returncode=1))
    for survivor, alarm, status in ((False, False, 0), (True, False, 1), (False, True, 1)):
        monkeypatch.setattr(meta, "run_groups", fake(survivor, alarm))
        buf = io.StringIO()
        assert selfcheck.selfcheck(out=buf) == status
        text = buf.getvalue()
        assert "kill rate:" in text
        assert (f"survivors: {defect.name}" in text) == survivor
        assert (f"false alarms: {variant.name}" in text) == alarm
