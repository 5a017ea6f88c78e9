"""The verdicts a user would expect, on probe layers written outside the defect catalogue
(tests/probes/) and on torch's recorded finding: each `dropnorm audit` below is restricted to the
clauses at stake (quick profile), and its report.json is read back and validated."""
import json
import subprocess
import sys

import pytest

from dropnorm.report import files
from tests.conftest import ROOT, audit as run_audit, clause_entry

PROBES = ROOT / "tests" / "probes"


def audit(tmp_path, impl, *args):
    """Run `dropnorm audit` (quick) on `impl`; returns (exit status, report.json validated, stderr)."""
    run = run_audit(impl, tmp_path, *args, timeout=900)
    report = json.loads((tmp_path / "report.json").read_text())
    files.validate(report)
    return run.returncode, report, run.stderr


def test_affine_claimed_but_ignored_is_not_conformant(tmp_path):
    """affine=True accepted and reported, no weight/bias, no affine map: BN-TRAIN-01 fails on the
    missing parameters (every kind), and the affine=False examples still ran."""
    rc, report, err = audit(tmp_path, f"torch-module:{PROBES / 'affine_ignored.py'}", "--clause=BN-TRAIN-01")
    e = clause_entry(report, "BN-TRAIN-01")
    assert rc == 1 and not report["conformant"], err
    assert e["status"] == "fail" and e["failure"]["condition"] == "affine-parameters", e
    assert {v["status"] for v in e["by_layer"].values()} == {"fail"}
    assert sum(t["examples"] for t in e["tests"]) > 0


def test_missing_layers_are_listed_and_never_pass(tmp_path):
    """Only Dropout and BatchNorm2d: no Dropout2d clause reads pass, the missing layers are listed."""
    rc, report, err = audit(tmp_path, f"torch-module:{PROBES / 'partial_layers.py'}", "--clause=D2-EVAL-01",
                            "--clause=D2-GRAD-01", "--clause=D2-DTYPE-01", "--clause=DO-EVAL-01")
    assert report["layers"] == {"provided": ["Dropout", "BatchNorm2d"],
                                "missing": ["Dropout2d", "BatchNorm1d", "BatchNorm3d", "Dropout1d", "Dropout3d",
                                            "AlphaDropout", "FeatureAlphaDropout"]}
    assert "missing: Dropout2d, BatchNorm1d, BatchNorm3d, Dropout1d, Dropout3d, AlphaDropout" in err
    for cid in ("D2-EVAL-01", "D2-GRAD-01", "D2-DTYPE-01"):
        assert clause_entry(report, cid)["status"] == "not-provided", clause_entry(report, cid)
    assert clause_entry(report, "DO-EVAL-01")["status"] == "pass"
    assert rc == 0


@pytest.mark.parametrize("probe,clauses", [
    ("biased_half_statistics.py", ("BN-TRAIN-03",)),
    ("textbook_batchnorm.py", ("BN-TRAIN-03", "BN-TRAIN-05")),
])
def test_one_defect_does_not_hide_another(tmp_path, probe, clauses):
    """Two defects in one BatchNorm: each is named on its own clause (the biased running variance
    on BN-TRAIN-03 even when the running mean fails first, or the counter is missing)."""
    rc, report, err = audit(tmp_path, f"torch-module:{PROBES / probe}", "--clause=BN-TRAIN-02",
                            "--clause=BN-TRAIN-03", "--clause=BN-TRAIN-05")
    assert rc == 1
    for cid in clauses:
        assert clause_entry(report, cid)["status"] == "fail", (cid, clause_entry(report, cid)["reason"])


def test_an_error_on_one_input_class_leaves_the_other_clauses_judged(tmp_path):
    """The d2l book's BatchNorm (tests/probes/d2l_batchnorm.py) raises on BatchNorm1d's (N, C, L) input and on
    momentum=None: each error fails the clause covering its input class (BN-API-03/accepts, BN-TRAIN-04), the
    class is left out of the other clauses' examples, and its biased running variance is named on BN-TRAIN-03
    (issue 22: it had read not-reached, the masked rerun ending in the rank error)."""
    rc, report, err = audit(tmp_path, f"torch-module:{PROBES / 'd2l_batchnorm.py'}", "--clause=BN-TRAIN-02",
                            "--clause=BN-TRAIN-03", "--clause=BN-API-03", "--clause=BN-TRAIN-04")
    assert rc == 1
    got = clause_entry(report, "BN-TRAIN-03")
    assert got["status"] == "fail" and got["failure"]["condition"] == "running-var", got["reason"]
    api = clause_entry(report, "BN-API-03")
    assert api["status"] == "fail" and "rank=3" in api["reason"], api["reason"]
    cma = clause_entry(report, "BN-TRAIN-04")
    assert cma["status"] == "fail" and "momentum=None" in cma["reason"], cma["reason"]


def test_nonfinite_values_still_give_a_valid_report(tmp_path):
    """inf, -inf and NaN in outputs, gradients and running statistics: report.json is valid JSON
    against the schema (non-finite values as strings) and the layer is not conformant."""
    rc, report, err = audit(tmp_path, f"torch-module:{PROBES / 'nonfinite_everywhere.py'}",
                            "--clause=BN-TRAIN-01", "--clause=BN-GRAD-01", "--clause=BN-TRAIN-02")
    assert rc == 1 and not report["conformant"], err
    json.loads((tmp_path / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"literal {c}"))


def test_torch_recorded_bug_is_a_known_defect_for_any_seed(tmp_path):
    """torch's CPU backward bug for transposed (1, C, 1, W) inputs: BN-LAYOUT-01 is a known defect
    (pinned case, so every seed sees it), torch is not conformant, and exit 3 says nothing else fails."""
    rc, report, err = audit(tmp_path, "torch", "--clause=BN-LAYOUT-01", "--seed=1520527174")
    assert clause_entry(report, "BN-LAYOUT-01")["status"] == "known-defect", clause_entry(report, "BN-LAYOUT-01")
    assert not report["conformant"] and "no unrecorded failure" in report["verdict"]
    assert rc == 3, err
    # the pinned finding's entries are met by every seed (other recorded bugs may need a drawn case)
    pinned = [d for d in report["deviations"] if d["finding"] == "docs/findings/torch-batchnorm-backward-transposed.md"
              and d["condition"] in ("dx-transposed", "dgamma-transposed", "dbias-transposed")]
    assert pinned and not [d for d in pinned if d["stale"]], pinned
    # the recorded bug's evidence: a standalone script that still reproduces it (exit 1)
    script = tmp_path / "repro-BN-LAYOUT-01-dx-transposed.py"
    run = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 1 and "REPRODUCED" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]


def test_a_layout_run_is_judged_against_a_failing_contiguous_run_not_hidden_by_it():
    """BN gradient tests (BN-GRAD-01/03, BN-LAYOUT-01): when the contiguous run fails a quantity (the
    failure masked on a rerun, or recorded as a known defect), a layout run is judged against the
    contiguous run within 2 t: the shared departure is not charged to BN-LAYOUT-01 again, and a layout
    that departs from the contiguous run still fails. With the contiguous run passing, a layout run
    is judged against the reference within t, as before."""
    import numpy as np

    from dropnorm.suite import checks
    from dropnorm.properties._family import compare_layout_run as _compare

    expected, t = np.zeros(3), np.full(3, 0.1)
    saved = checks.context()
    try:
        checks.set_context(checks.Context(masked={("BN-GRAD-01", "dx")}))  # found by an earlier run
        seen = {}
        _compare(seen, "contiguous", np.ones(3), expected, t, "BN-GRAD-01", "dx", "case")
        _compare(seen, "transposed", np.ones(3) + 0.15, expected, t, "BN-GRAD-01", "dx", "case")
        with pytest.raises(checks.ClauseViolation) as e:
            _compare(seen, "strided", np.ones(3) + 0.25, expected, t, "BN-GRAD-01", "dx", "case")
        assert (e.value.clause, e.value.condition) == ("BN-LAYOUT-01", "dx-strided")
        assert "against the contiguous run, which fails BN-GRAD-01/dx" in str(e.value)

        checks.set_context(checks.Context())
        seen = {}
        _compare(seen, "contiguous", np.full(3, 0.05), expected, t, "BN-GRAD-01", "dx", "case")
        with pytest.raises(checks.ClauseViolation) as e:  # within 2t of the contiguous run, not within t
            _compare(seen, "transposed", np.full(3, 0.15), expected, t, "BN-GRAD-01", "dx", "case")
        assert (e.value.clause, e.value.condition) == ("BN-LAYOUT-01", "dx-transposed")
    finally:
        checks.set_context(saved)
