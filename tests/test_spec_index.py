"""The suite checks its own bookkeeping: every clause is tested, every cited clause
exists, the rendered clause table, the ledger and the deviation files are valid, and
the statistical tests stay within the false-alarm budget of dropnorm/stats.py."""
import importlib
import pathlib
import tomllib

import pytest

from dropnorm import spec, stats

TESTS = pathlib.Path(__file__).parent
ROOT = TESTS.parent


def _test_functions():
    for path in sorted(TESTS.glob("test_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for name in dir(module):
            fn = getattr(module, name)
            if name.startswith("test_") and callable(fn):
                yield f"{path.name}::{name}", fn


def _marks(fn, name):
    return [m for m in getattr(fn, "pytestmark", []) if m.name == name]


def test_every_clause_has_a_test_and_every_citation_is_known():
    cited = {}
    for where, fn in _test_functions():
        for mark in _marks(fn, "clause"):
            for cid in mark.args:
                cited.setdefault(cid, []).append(where)
    unknown = {c: w for c, w in cited.items() if c not in spec.clauses()}
    assert not unknown, f"tests cite unknown clauses: {unknown}"
    untested = sorted(set(spec.clauses()) - set(cited))
    assert not untested, f"clauses without a test: {untested}"


def test_rendered_clause_table_is_current():
    on_disk = (ROOT / "spec" / "CLAUSES.md").read_text(encoding="utf-8")
    assert on_disk == spec.markdown(), "spec/CLAUSES.md is stale: run python -m dropnorm.spec --markdown"


def test_statistical_budget():
    """Checks per example x examples, summed over statistical tests, stay within MAX_STAT_CHECKS."""
    total = sum(m.kwargs["checks"] for _, fn in _test_functions() for m in _marks(fn, "statistical"))
    assert total > 0
    assert total * stats.STAT_MAX_EXAMPLES <= stats.MAX_STAT_CHECKS, (
        f"{total} checks x {stats.STAT_MAX_EXAMPLES} examples exceeds the budget {stats.MAX_STAT_CHECKS}")


def test_ledger_is_valid():
    ledger = tomllib.loads((ROOT / "spec" / "ledger.toml").read_text(encoding="utf-8"))["claim"]
    verdicts = {"holds", "wrong", "convention", "not-testable"}
    ids = [c["id"] for c in ledger]
    assert len(ids) == len(set(ids))
    for claim in ledger:
        assert claim["verdict"] in verdicts, claim["id"]
        assert claim["correct"], claim["id"]
        assert set(claim["clauses"]) <= set(spec.clauses()), claim["id"]
        if claim["verdict"] == "convention":
            assert claim.get("convention"), claim["id"]
        if "demonstrated_by" in claim:
            assert (ROOT / claim["demonstrated_by"]).is_file(), claim["demonstrated_by"]
    assert sum(c["verdict"] == "wrong" for c in ledger) >= 4


@pytest.mark.parametrize("path", sorted((ROOT / "spec" / "deviations").glob("*.toml")), ids=lambda p: p.name)
def test_deviation_files_are_valid(path):
    deviations = spec.load_deviations(path)
    assert deviations
    for dev in deviations.values():
        assert dev.reason and dev.evidence


def test_bad_deviation_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[deviation]]\nclause = "XX-01"\ncondition = "c"\nkind = "known-defect"\nreason = "r"\nevidence = "e"\n')
    with pytest.raises(spec.SpecError, match="unknown clause 'XX-01'"):
        spec.load_deviations(bad)
