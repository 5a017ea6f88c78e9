"""Other frameworks' layers, audited as a user would (`dropnorm audit --impl NAME`, quick profile).

Each framework is an optional extra (pyproject.toml); its test skips, saying which extra to
install, when the framework is absent. CI installs keras and onnx. A framework passes here when
the audit completes and every departure is either its documented convention (a parameter of
the tests, spec/conventions.toml) or a recorded deviation (spec/deviations/<impl>.toml): any
new fail or error is a regression, of the framework or of its adapter.

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their
own (clause markers are for property tests); the clause IDs they assert on are those the
audited implementations are blamed for.
"""
from __future__ import annotations

import pytest

from dropnorm.run import matrix
from dropnorm.adapters import FRAMEWORKS
from dropnorm.report import files
from tests.conftest import audit


@pytest.mark.parametrize("framework", [i for i in matrix.CANDIDATES if i in FRAMEWORKS])
def test_framework_audit_has_no_unrecorded_failure(framework, tmp_path):
    impl = framework
    if impl not in matrix.installed():
        pytest.skip(f"{impl} is not installed (pip install -e '.[{FRAMEWORKS[impl][1]}]')")
    run = audit(impl, tmp_path, "--quiet")
    report = files.load_report(tmp_path)
    failing = {e["id"]: e["reason"][:300] for e in report["clauses"]
               if e["status"] in ("fail", "error", "not-reached")}
    # exit 0 (conformant) or 3 (only recorded known defects): nothing unrecorded fails
    assert run.returncode in (0, 3) and not failing, f"{impl}: exit {run.returncode}, failing {failing}"
    assert report["complete"] and report["summary"]["pass"] > 0
    assert report["implementation"]["convention"] != "" and report["environment"]["device"] == "cpu"
