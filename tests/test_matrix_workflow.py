"""The CI matrix workflow (.github/workflows/matrix.yml) audits every implementation dropnorm registers,
each with an extra that exists, so that the matrix of record can be rebuilt on other machines."""
import pathlib
import re
import tomllib

from dropnorm.adapters import REGISTRY

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "matrix.yml"
# the same layers through another front end, audited by their siblings' jobs
NOT_A_JOB = {"keras-tensorflow", "torch-compile-fullgraph", "torch-compile-dynamic"}


def test_the_matrix_workflow_has_one_job_per_implementation_with_a_real_extra():
    jobs = dict(re.findall(r'- \{impl: ([\w-]+), extra: "([\w-]*)"\}', WORKFLOW.read_text()))
    assert set(REGISTRY) - NOT_A_JOB <= set(jobs), sorted(set(REGISTRY) - NOT_A_JOB - set(jobs))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert all(not e or e in extras for e in jobs.values()), jobs
    assert "dropnorm matrix $args" in WORKFLOW.read_text()
