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
    for path in sorted((ROOT / "dropnorm" / "properties").glob("test_*.py")):
        module = importlib.import_module(f"dropnorm.properties.{path.stem}")
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
    """The verdict rule at the top of spec/ledger.toml, in the form a test can check."""
    ledger = tomllib.loads((ROOT / "spec" / "ledger.toml").read_text(encoding="utf-8"))["claim"]
    verdicts = {"holds", "wrong", "convention", "not-testable"}
    ids = [c["id"] for c in ledger]
    assert len(ids) == len(set(ids))
    for claim in ledger:
        cid = claim["id"]
        assert claim["verdict"] in verdicts, cid
        assert claim["correct"], cid
        assert set(claim["clauses"]) <= set(spec.clauses()), cid
        assert cid.startswith(f"L-{claim['doc'][:3]}-"), f"{cid}: id does not name its document {claim['doc']}"
        if claim["verdict"] == "not-testable":
            # history, attribution or opinion: no clause can decide it
            assert not claim["clauses"] and "no_clause" not in claim and "demonstrated_by" not in claim, cid
        else:
            # holds, wrong, convention: the deciding clauses, or why none can decide it (exactly one)
            assert bool(claim["clauses"]) != bool(claim.get("no_clause")), (
                f"{cid}: a {claim['verdict']} claim names the clauses that decide it or, with clauses = [], "
                "says in no_clause why none can")
        if claim["verdict"] == "convention":
            assert claim.get("convention"), cid
        else:
            assert "convention" not in claim, cid
        if "demonstrated_by" in claim:
            assert claim["verdict"] == "wrong", cid
            assert (ROOT / claim["demonstrated_by"]).is_file(), claim["demonstrated_by"]
    # ids in reading order: L-<doc>-01, -02, ... without gaps, per document
    by_doc = {}
    for claim in ledger:
        by_doc.setdefault(claim["doc"], []).append(int(claim["id"].rsplit("-", 1)[1]))
    for doc, seqs in by_doc.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{doc}: ids not numbered in order: {seqs}"
    assert sum(c["verdict"] == "wrong" for c in ledger) >= 4


@pytest.mark.parametrize("path", sorted((ROOT / "spec" / "deviations").glob("*.toml")), ids=lambda p: p.name)
def test_deviation_files_are_valid(path):
    deviations = spec.load_deviations(path)
    assert deviations
    for dev in deviations:
        assert dev.reason and dev.evidence and dev.kind in spec.DEVIATION_KINDS
        if dev.kind == "known-defect":
            assert (ROOT / dev.finding).is_file(), f"{dev.key}: its finding {dev.finding} does not exist"


def test_bad_deviation_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[deviation]]\nclause = "XX-01"\ncondition = "c"\nkind = "known-defect"\nreason = "r"\nevidence = "e"\n')
    with pytest.raises(spec.SpecError, match="unknown clause 'XX-01'"):
        spec.load_deviations(bad)


def test_a_deviation_file_can_include_another_and_a_cycle_is_a_clear_error(tmp_path):
    """include = [...] reads the deviations of a file recording the same code first (the compile
    variants share torch-compile.toml); each deviation keeps its own file as source. The entry used is
    DO-NONFINITE-01/dropped-is-zero; no clause's checks run here."""
    entry = '[[deviation]]\nclause = "DO-NONFINITE-01"\ncondition = "dropped-is-zero"\nkind = "convention"\n' \
            'reason = "r"\nevidence = "e"\n'
    (tmp_path / "base.toml").write_text(entry)
    (tmp_path / "variant.toml").write_text('include = ["base.toml"]\n' + entry.replace('"r"', '"r2"'))
    devs = spec.load_deviations(tmp_path / "variant.toml")
    assert [(d.reason, pathlib.Path(d.source).name) for d in devs] == [("r", "base.toml"), ("r2", "variant.toml")]
    (tmp_path / "base.toml").write_text('include = ["variant.toml"]\n' + entry)
    with pytest.raises(spec.SpecError, match="includes it back"):
        spec.load_deviations(tmp_path / "variant.toml")
    (tmp_path / "typo.toml").write_text('inclde = ["base.toml"]\n')
    with pytest.raises(spec.SpecError, match="unknown top-level keys"):
        spec.load_deviations(tmp_path / "typo.toml")


def test_every_clause_has_a_basis_and_a_class_and_a_recommendation_is_never_a_must():
    """spec 0.2.0: each clause records where its requirement comes from; a requirement resting only on a
    decision of this specification ([DN], basis recommendation) is SHOULD, with its reason written."""
    from dropnorm import spec
    for c in spec.clauses().values():
        assert c.basis in spec.BASES and c.conformance_class in spec.classes(), c.id
        if c.basis == "recommendation":
            assert c.level == "SHOULD" and c.level_reason, c.id
        if c.level == "SHOULD":
            assert c.level_reason, f"{c.id}: a SHOULD clause says why it is not a MUST"
    assert all(any(c.conformance_class == k for c in spec.clauses().values()) for k in spec.classes())


def test_no_known_defect_is_recorded_against_a_recommendation():
    """A departure from this specification's own recommendation is not a defect of the framework: it is
    recorded as a convention (spec/deviations/*.toml)."""
    from dropnorm import spec
    for path in sorted(spec.SPEC_DIR.joinpath("deviations").glob("*.toml")):
        for d in spec.load_deviations(path):
            if spec.clauses()[d.clause].basis == "recommendation":
                assert d.kind == "convention", f"{path.name}: {d.key} is a known-defect of a recommendation"
