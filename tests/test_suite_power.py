"""A suite that passes a defective implementation has a bug: the documented errors of the
source documents (spec/ledger.toml, demonstrated_by) must each fail, on the clause they
violate. Each defect runs in a subprocess against the test module of its clause family,
with the derandomized quick profile (deterministic, a few seconds each).

The correct side is covered by the default run itself, which audits the from-scratch
implementation dropnorm/zoo/scratch.py through every clause (conftest.DEFAULT_IMPLS).
"""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

DEFECTS = [
    ("no_inverted_scaling", "tests/test_dropout_train.py::test_training_output_is_zero_or_scaled_input",
     "DO-TRAIN-01"),
    ("eval_scaling", "tests/test_dropout_modes.py::test_eval_is_identity_and_leaves_rng", "DO-EVAL-01"),
    ("global_mean_unbiased_var", "tests/test_batchnorm_train.py::test_training_output", "BN-TRAIN-01"),
    ("moving_average_sign", "tests/test_batchnorm_train.py::test_running_statistics", "BN-TRAIN-02"),
]


@pytest.mark.parametrize("defect,target,clause", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_documented_error_fails_on_its_clause(defect, target, clause):
    cmd = [sys.executable, "-m", "pytest", target, f"--impl=torch-module:dropnorm.zoo.defects.{defect}",
           "--hypothesis-profile=quick", "-q", "-x", "-p", "no:xdist", "-p", "no:cacheprovider"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 1, f"expected the suite to fail {defect} (exit 1), got {run.returncode}:\n{out[-3000:]}"
    assert f"ClauseViolation: {clause}/" in out, f"{defect} failed, but not on {clause}:\n{out[-3000:]}"
