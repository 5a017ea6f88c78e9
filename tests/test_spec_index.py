"""The suite checks its own bookkeeping: every clause is tested, every cited clause
exists, the rendered clause table, the ledger and the deviation files are valid, and
the statistical tests stay within the false-alarm budget of dropnorm/spec/stats.py."""
import importlib
import pathlib
import re
import tomllib

import pytest

from dropnorm import spec

from dropnorm.spec import stats

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


def test_no_clause_is_tested_twice_under_one_name():
    """A clause is tested in one place: no two property modules define a test of the same name that cites the
    same clause (D2-TRAIN-03/04 once had test_channel_keep_rate and test_channel_draws_independent in both
    test_dropout_stats.py and test_channel_dropout_ranks.py). Besides the split, such a pair shares one time
    limit: the audit keys each test's cost by its bare name (dropnorm/run/test_costs.json)."""
    modules = {}
    for _, fn in _test_functions():
        name = fn.__name__
        for mark in _marks(fn, "clause"):
            for cid in mark.args:
                modules.setdefault((name, cid), set()).add(fn.__module__)  # where it is defined, not imported
    twice = {f"{cid} by {name}": sorted(m) for (name, cid), m in sorted(modules.items()) if len(m) > 1}
    assert not twice, f"clauses tested under one test name in several modules: {twice}"


def test_rendered_clause_table_is_current():
    on_disk = (ROOT / "spec" / "CLAUSES.md").read_text(encoding="utf-8")
    assert on_disk == spec.markdown(), "spec/CLAUSES.md is stale: run python -m dropnorm.spec --markdown"


def _examples_at_most(fn, kinds: int) -> int:
    """The most examples a statistical test runs in any profile: its explicit examples (each run once, hh.given
    deals them out over the kinds) and, per kind, max(1, ceil(generated / kinds)) generated ones, where
    generated <= STAT_MAX_EXAMPLES - explicit (test_dropout_stats._stat_settings; the scale tests run fewer)."""
    explicit = len(getattr(fn, "hypothesis_explicit_examples", ()))
    assert explicit < stats.STAT_MAX_EXAMPLES, fn.__name__
    generated = stats.STAT_MAX_EXAMPLES - explicit
    return explicit + kinds * max(1, -(-generated // kinds))


def test_statistical_budget():
    """Checks per example x examples, summed over statistical tests, stay within MAX_STAT_CHECKS. A test
    runs once per layer kind its clauses cover (hh.given), each run rounding its share of the examples up,
    so the kinds are counted at their most (every kind provided)."""
    from dropnorm.spec.kinds import LAYER_KINDS
    total, stat_tests = 0, 0
    for _, fn in _test_functions():
        for m in _marks(fn, "statistical"):
            kinds = {k for mark in _marks(fn, "clause") for cid in mark.args
                     for k in LAYER_KINDS[spec.clauses()[cid].layer]}
            total += m.kwargs["checks"] * _examples_at_most(fn, len(kinds))
            stat_tests += 1
    assert stat_tests > 0
    assert total <= stats.MAX_STAT_CHECKS, (
        f"{total} checks (checks per example x examples, over {stat_tests} tests) exceed the budget "
        f"{stats.MAX_STAT_CHECKS}")


def test_explicit_examples_written_above_hh_given_run_once_each():
    """hh.given hands the explicit examples written above it (hypothesis.example, as
    dropnorm/properties/test_dropout_stats.py's p = 0.5, 0.47, 0.0015 and 0.999) to hypothesis: each runs
    once, on the one kind of a single-kind test, dealt out over the kinds of a test covering several (each
    kind its turn). Until Dec 7 they landed on the outer function and never ran."""
    from hypothesis import example, settings
    from hypothesis import strategies as st

    from dropnorm.properties.test_dropout_stats import EXPLICIT_P
    from dropnorm.suite import checks, state
    from dropnorm.suite import strategies as hh

    impl = type("Fake", (), {"parameter_grid": False, "provides": lambda self, k: True})()
    for clause, kinds in (("DO-TRAIN-02", ["Dropout"]), ("D2-TRAIN-03", ["Dropout1d", "Dropout2d", "Dropout3d"])):
        seen = []

        @settings(max_examples=3, database=None, derandomize=True)
        @example(p=0.25)
        @example(p=0.75)
        @example(p=0.125)
        @example(p=0.5)
        @hh.given(p=st.floats(0.3, 0.4))
        def record(impl, p):
            seen.append((state.current().focus, p))

        before = checks.context()
        checks.set_context(checks.Context(marked=frozenset({clause})))
        try:
            record(impl=impl)
        finally:
            checks.set_context(before)
        explicit = [(kind, p) for kind, p in seen if p in (0.25, 0.75, 0.125, 0.5)]
        assert sorted(p for _, p in explicit) == [0.125, 0.25, 0.5, 0.75], (clause, seen)
        if len(kinds) > 1:
            assert {kind for kind, _ in explicit} == set(kinds), (clause, explicit)
        assert any(0.3 <= p <= 0.4 for _, p in seen), (clause, seen)  # the generated examples still run
    fn = importlib.import_module("dropnorm.properties.test_dropout_stats").test_keep_rate
    assert [e.kwargs["p"] for e in fn.hypothesis_explicit_examples] == list(reversed(EXPLICIT_P))


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
        problems = _wrong_entry_problems(claim)
        assert not problems, f"{cid}: " + "; ".join(problems)
        quoted = re.findall(r"「(.*?)」", claim["claim"])
        source = SEEDS / claim["doc"]
        if quoted and source.is_file():  # the post's own words, verbatim (where the seed documents are here)
            text = source.read_text(encoding="utf-8")
            for q in quoted:
                assert q in text, f"{cid}: the quoted words are not in {claim['doc']}: {q[:80]!r}"
    # ids in reading order: L-<doc>-01, -02, ... without gaps, per document
    by_doc = {}
    for claim in ledger:
        by_doc.setdefault(claim["doc"], []).append(int(claim["id"].rsplit("-", 1)[1]))
    for doc, seqs in by_doc.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{doc}: ids not numbered in order: {seqs}"
    assert sum(c["verdict"] == "wrong" for c in ledger) >= 4


SEEDS = ROOT.parent / "shared" / "seeds"   # the ledger's source documents (shared/seeds/, next to the checkout)
CLAIM_FORMS = ("prose", "code", "number")


def _wrong_entry_problems(claim) -> list[str]:
    """The ledger rule for a `wrong` entry that names clauses (spec/ledger.toml header, issue 24): it names in
    rejected_by a condition ("CLAUSE/condition") of one of its clauses whose check rejects the claimed
    behaviour, says its form, and where the claim is code or a number the rejection is executed: a witness
    (tests/ledger_witnesses.py) whose run of the claim through the reference makes that check raise, or a
    catalogue defect (demonstrated_by) that its clause catches on that condition (tests/test_zoo.py runs it;
    dropnorm/zoo/expected_conditions.toml names the conditions). [] when the entry keeps the rule."""
    from tests import ledger_witnesses
    from dropnorm.zoo import build  # noqa: F401 - the defect modules import it
    if claim["verdict"] != "wrong" or not claim["clauses"]:
        return [f"{k} only on a wrong entry that names clauses" for k in ("rejected_by", "form", "witness") if k in claim]
    problems = []
    rejected = claim.get("rejected_by") or []
    if not rejected:
        problems.append("a wrong entry names in rejected_by the CLAUSE/condition whose check rejects the claim")
    pairs = set()
    for item in rejected:
        clause, _, condition = item.partition("/")
        if clause not in claim["clauses"]:
            problems.append(f"rejected_by {item}: {clause} is not one of the entry's clauses {claim['clauses']}")
        elif condition not in spec.clauses()[clause].conditions:
            problems.append(f"rejected_by {item}: {clause} has no condition {condition!r}")
        pairs.add((clause, condition))
    if claim.get("form") not in CLAIM_FORMS:
        problems.append(f"form must be one of {CLAIM_FORMS}, got {claim.get('form')!r}")
    if re.search(r"np\.|numpy|\bcode\b", claim["claim"]) and claim.get("form") == "prose":
        problems.append("the claim quotes code: form is code")
    executed = False
    if "witness" in claim:
        run = getattr(ledger_witnesses, claim["witness"], None)
        if run is None:
            problems.append(f"witness {claim['witness']} is not a function of tests/ledger_witnesses.py")
        else:
            violation = run()
            if violation is None:
                problems.append(f"witness {claim['witness']}: the clause's check accepts the claimed behaviour")
            elif (violation.clause, violation.condition) not in pairs:
                problems.append(f"witness {claim['witness']}: rejected on {violation.clause}/{violation.condition}, "
                                f"not on rejected_by {rejected}")
            else:
                executed = True
    if "demonstrated_by" in claim:
        name = pathlib.Path(claim["demonstrated_by"]).stem
        defect = importlib.import_module(f"dropnorm.zoo.defects.{name}").DEFECT
        expected = tomllib.loads((ROOT / "dropnorm" / "zoo" / "expected_conditions.toml").read_text(
            encoding="utf-8")).get(name, [])
        if not any((defect["clause"], c) in pairs for c in expected):
            problems.append(f"demonstrated_by {name}: caught on {defect['clause']}/{expected}, none of rejected_by "
                            f"{rejected}")
        else:
            executed = True
    if claim.get("form") in ("code", "number") and not executed:
        problems.append(f"a {claim.get('form')} claim is run through the reference: give a witness or demonstrated_by")
    return problems


def test_ledger_wrong_rule_refuses_a_clause_that_accepts_the_claim():
    """The wrong-entry rule is not vacuous: L-002-07 as the ledger held it before spec 0.2.0 (eps = 0.1
    'wrong' through BN-API-02, a clause whose check accepts 0.1) is refused, as are an entry without
    rejected_by, a condition the clause lacks, a code claim without an executed rejection and a witness
    rejected on another condition; the entries as written now pass (test_ledger_is_valid)."""
    from tests import ledger_witnesses
    assert ledger_witnesses._eps_point_one_rejected_by_api() is None  # BN-API-02's check accepts eps = 0.1
    old = {"id": "L-002-07", "verdict": "wrong", "clauses": ["BN-API-02", "BN-TRAIN-01"],
           "claim": "A typical small epsilon is 0.1 (the example code also uses epsilon = 0.1).",
           "rejected_by": ["BN-API-02/non-positive"], "form": "number", "witness": "_eps_point_one_rejected_by_api"}
    assert any("accepts the claimed behaviour" in p for p in _wrong_entry_problems(old))
    assert any("rejected_by" in p for p in _wrong_entry_problems(dict(old, rejected_by=[])))
    assert any("has no condition" in p for p in _wrong_entry_problems(dict(old, rejected_by=["BN-API-02/nope"])))
    no_run = {k: v for k, v in old.items() if k != "witness"}
    assert any("run through the reference" in p for p in _wrong_entry_problems(no_run))
    elsewhere = dict(old, clauses=["DO-TRAIN-02", "DO-EVAL-01"], rejected_by=["DO-EVAL-01/identity"],
                     witness="keep_rate_one_half")
    assert any("not on rejected_by" in p for p in _wrong_entry_problems(elsewhere))
    good = dict(elsewhere, rejected_by=["DO-TRAIN-02/keep-rate"])
    assert _wrong_entry_problems(good) == []


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
