"""The spec says exactly what the tests check.

(a) Every condition label a test can raise is listed under its clause in
    spec/clauses.toml (`conditions = [...]`), and every listed condition is
    raised by some test. The labels are found statically (AST), from every
    test function of dropnorm/properties/test_*.py down to the one place a clause can fail,
    dropnorm.suite.checks.check: through the helpers of dropnorm/suite/checks.py
    (assert_close, assert_shape -> "shape", assert_dtype -> "dtype",
    assert_inverted_dropout -> "scale", "whole-channel", ...) and the tests'
    own helpers, with the literal arguments of each call site, the values of
    pytest.mark.parametrize, literal for-loops, conditional expressions and
    f-strings. A part the scan cannot resolve (a layout drawn by hypothesis)
    becomes the wildcard "*": "dx-*" must match at least one listed condition,
    and the listed conditions it matches count as used.
(b) Every clause has at least one defect in the catalogue
    (dropnorm/zoo/defects/*.py, DEFECT["clause"]) that tests/test_zoo.py shows
    the suite rejects on that clause, or is in NO_DEFECT below with the reason
    why none is catalogued yet. NO_DEFECT must shrink, never grow: a clause
    that gains a defect must leave it.

A self-check of the suite: it cites no spec clause of its own.
"""
from __future__ import annotations

import ast
import fnmatch
import functools
import itertools
import pathlib

import pytest

from dropnorm import spec

TESTS = pathlib.Path(__file__).parent
ROOT = TESTS.parent
PROPERTIES = ROOT / "dropnorm" / "properties"   # the property suite
WILD = "*"
SINK = ("dropnorm.suite.checks", "check")   # check(ok, clause, condition, message, ...)
MAX_VARIANTS = 64                      # call-site bindings expanded per call
MAX_DEPTH = 8

# Clauses with no defect in the catalogue yet, each with the reason. Shrink only.
NO_DEFECT = {
    # consequences of another clause: every plausible defect breaks the clause it follows from, where
    # the zoo catalogues it; a defect of their own must depart only where the reference-free check sees it
    "BN-META-01": "consequence of BN-TRAIN-01; its defects (eps outside the root, a global mean) are "
                  "catalogued under BN-TRAIN-01; wanted: one that only a rescaled input exposes",
    "BN-META-02": "consequence of BN-TRAIN-01; statistics over a wrong axis (batch_axis_only.py) are "
                  "catalogued under BN-TRAIN-01; wanted: a position-dependent normalisation",
    "BN-GRAD-02": "consequence of BN-GRAD-01: a backward that ignores d mu/dx fails the dx check of the "
                  "same test first; wanted: a dx wrong only by a per-channel constant",
    "DO-MOMENT-01": "consequence of DO-TRAIN-01 and DO-TRAIN-02, whose defects (no_inverted_scaling.py, "
                    "keep_rate_off.py) break it; wanted: keep rate and scale off together (p as 1/scale)",
    "BN-EVAL-02": "a batch-dependent eval (eval_batch_stats.py) fails BN-EVAL-01 first; wanted: an eval "
                  "whose output depends on the batch below BN-EVAL-01's tolerance, or a nondeterministic one",
}


# ------------------------------------------------------------------ the scan
def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts)


@functools.lru_cache(maxsize=None)
def _parse(modname: str):
    path = ROOT.joinpath(*modname.split(".")).with_suffix(".py")
    if not path.is_file():
        path = ROOT.joinpath(*modname.split("."), "__init__.py")
    if not path.is_file():
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    # the methods of a hypothesis state machine (its rules run the checks), as "Class.method": never a call target
    # by name, scanned as roots by used_conditions
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and any(getattr(b, "id", None) == "RuleBasedStateMachine" for b in cls.bases):
            functions.update({f"{cls.name}.{m.name}": m for m in cls.body
                              if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))})
    aliases = {}  # local name -> (module, attribute or None)
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if _parse_exists(sub):
                    aliases[a.asname or a.name] = (sub, None)
                else:
                    aliases[a.asname or a.name] = (node.module, a.name)
    return tree, functions, aliases


def _parse_exists(modname: str) -> bool:
    base = ROOT.joinpath(*modname.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _project(modname: str) -> bool:
    return modname.split(".")[0] in ("dropnorm", "tests")


def _callee(modname: str, func: ast.expr):
    """(module, function name) of a call to a project function, else None."""
    _, functions, aliases = _parse(modname)
    if isinstance(func, ast.Name):
        if func.id in functions:
            return modname, func.id
        target = aliases.get(func.id)
        if target and target[1] and _project(target[0]) and _parse(target[0]):
            return target[0], target[1]
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        target = aliases.get(func.value.id)
        if target and target[1] is None and _project(target[0]) and _parse(target[0]):
            return target[0], func.attr
    return None


class _Function:
    """Evaluates the strings an expression of one function can take, given its parameters' bindings."""

    def __init__(self, modname, node, bindings):
        self.mod, self.node, self.bindings = modname, node, bindings
        self.assigned = {}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign):
                for t in sub.targets:
                    if isinstance(t, ast.Name):
                        self.assigned.setdefault(t.id, []).append(sub.value)
                    elif isinstance(t, ast.Tuple):  # a, b = (x, y) if ... else (z, w)
                        for i, e in enumerate(t.elts):
                            if isinstance(e, ast.Name):
                                self.assigned.setdefault(e.id, []).append(("unpack", i, sub.value))
            elif isinstance(sub, (ast.For, ast.comprehension)):
                if isinstance(sub.target, ast.Name):
                    self.assigned.setdefault(sub.target.id, []).append(("iter", sub.iter))
                elif isinstance(sub.target, ast.Tuple):  # for a, (b, c) in ...: a from each element
                    for i, e in enumerate(sub.target.elts):
                        if isinstance(e, ast.Name):
                            self.assigned.setdefault(e.id, []).append(("unpack-iter", i, sub.iter))
        self._busy = set()

    def name(self, ident):
        if ident in self.bindings:
            return self.bindings[ident]
        sources = self.assigned.get(ident)
        if not sources or ident in self._busy:
            return {WILD}
        self._busy.add(ident)
        try:
            out = set()
            for src in sources:
                if isinstance(src, tuple) and src[0] == "unpack":
                    out |= {v[src[1]] if isinstance(v, tuple) and len(v) > src[1] else WILD
                            for v in self.ev(src[2])}
                elif isinstance(src, tuple) and src[0] == "unpack-iter":
                    out |= {v[src[1]] if isinstance(v, tuple) and len(v) > src[1] else WILD
                            for v in self.iterate(src[2])}
                elif isinstance(src, tuple):
                    out |= self.iterate(src[1])
                else:
                    out |= self.ev(src)
            return out or {WILD}
        finally:
            self._busy.discard(ident)

    def iterate(self, node):
        """The values an iteration over `node` yields."""
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            out = set()
            for e in node.elts:
                out |= self.ev(e.value) if isinstance(e, ast.Starred) else self.ev(e)
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.iterate(node.left) | self.iterate(node.right)
        if isinstance(node, ast.IfExp):
            return self.iterate(node.body) | self.iterate(node.orelse)
        if isinstance(node, ast.Call):
            target = _callee(self.mod, node.func)
            if target:
                out = set()
                for ret in _returns(target, self.call_bindings(node, target), iterate=True):
                    out |= ret
                return out or {WILD}
            if (isinstance(node.func, ast.Attribute) and node.func.attr in ("items", "keys")
                    and isinstance(node.func.value, ast.Dict)):  # {"label": ...}.items(): the labels
                return {(k, WILD) for k in self.iterate(ast.Tuple(elts=node.func.value.keys))}
        if isinstance(node, ast.Dict):
            return self.iterate(ast.Tuple(elts=node.keys))
        return {WILD}

    def ev(self, node):
        if isinstance(node, ast.Constant):
            return {node.value}
        if "__marks__" in self.bindings and any(
                isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                and sub.func.attr == "get_closest_marker" for sub in ast.walk(node)):
            return self.bindings["__marks__"]  # request.node.get_closest_marker("clause").args[0]
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.IfExp):
            decided = self.decide(node.test)
            if decided is True:
                return self.ev(node.body)
            if decided is False:
                return self.ev(node.orelse)
            return self.ev(node.body) | self.ev(node.orelse)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append({v.value})
                else:
                    vals = self.ev(v.value)
                    plain = v.conversion == -1 and v.format_spec is None
                    parts.append({x if isinstance(x, str) else str(x) if plain and isinstance(x, (int, float))
                                  else WILD for x in vals})
            return {_stars("".join(p)) for p in itertools.islice(itertools.product(*parts), 256)}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.ev(node.left), self.ev(node.right)
            if all(isinstance(x, str) for x in left | right):
                return {_stars(a + b) for a in left for b in right}
            return {WILD}
        if isinstance(node, ast.Tuple):
            return set(itertools.islice(itertools.product(*(self.ev(e) for e in node.elts)), 256))
        if isinstance(node, ast.Call):
            target = _callee(self.mod, node.func)
            if target:
                out = set()
                for variant in self.call_bindings(node, target):
                    for ret in _returns(target, [variant]):
                        out |= ret
                return out or {WILD}
        return {WILD}

    def decide(self, test):
        """True/False for a test `name == "literal"` (or !=, not name, name) with one known value."""
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq)):
            left, right = self.ev(test.left), self.ev(test.comparators[0])
            if len(left) == 1 and len(right) == 1 and WILD not in left | right:
                same = next(iter(left)) == next(iter(right))
                return same if isinstance(test.ops[0], ast.Eq) else not same
            return None
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self.decide(test.operand)
            return None if inner is None else not inner
        if isinstance(test, ast.Name):
            vals = self.name(test.id)
            if len(vals) == 1 and isinstance(next(iter(vals)), bool):
                return next(iter(vals))
        return None

    def call_bindings(self, call, target):
        """The callee's parameter bindings at this call site, one dict per variant (single values)."""
        fn = _parse(target[0])[1].get(target[1])
        if fn is None:
            return []
        args = fn.args
        params = [a.arg for a in args.posonlyargs + args.args]
        defaults = dict(zip(params[len(params) - len(args.defaults):], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        positional = [[]]  # variants of the positional argument values (sets)
        for a in call.args:
            if isinstance(a, ast.Starred):
                spread = [t for t in self.ev(a.value) if isinstance(t, tuple)]
                if not spread:
                    positional = [p + [{WILD}] * 8 for p in positional]
                    continue
                positional = [p + [{v} for v in t] for p in positional for t in spread]
            else:
                positional = [p + [self.ev(a)] for p in positional]
        keywords = {k.arg: self.ev(k.value) for k in call.keywords if k.arg}
        # names unpacked from one loop (for key, clause, condition in ((...), ...)) vary together
        joint = {}
        for pname, a in zip(params, call.args):
            srcs = self.assigned.get(a.id, []) if isinstance(a, ast.Name) and a.id not in self.bindings else []
            if len(srcs) == 1 and isinstance(srcs[0], tuple) and srcs[0][0] == "unpack-iter":
                joint.setdefault(id(srcs[0][2]), (srcs[0][2], []))[1].append((pname, srcs[0][1]))
        joint = [(it, names) for it, names in joint.values() if len(names) > 1]
        rows_of = [(names, [r for r in self.iterate(it) if isinstance(r, tuple)]) for it, names in joint]
        variants = []
        for pos in positional:
            bound = {name: ({d.value} if isinstance(d, ast.Constant) else {WILD}) for name, d in defaults.items()}
            bound.update({name: vals for name, vals in zip(params, pos)})
            bound.update({k: v for k, v in keywords.items()})
            fixed_rows = [{}]
            for names, rows in rows_of:
                fixed_rows = [dict(f, **{pname: {r[i] if len(r) > i else WILD} for pname, i in names})
                              for f in fixed_rows for r in rows] or fixed_rows
            for fixed in fixed_rows:
                b = dict(bound, **fixed)
                names = sorted(b)
                for combo in itertools.islice(itertools.product(*(sorted(b[n], key=repr) for n in names)),
                                              MAX_VARIANTS):
                    variants.append(dict(zip(names, ({v} for v in combo))))
        return variants


def _stars(s: str) -> str:
    while WILD + WILD in s:
        s = s.replace(WILD + WILD, WILD)
    return s


def _returns(target, variants, iterate=False):
    """Per variant, the values the function returns (or, iterate=True, those its result yields)."""
    fn = _parse(target[0])[1].get(target[1])
    out = []
    for bindings in variants:
        f = _Function(target[0], fn, bindings)
        vals = set()
        for sub in ast.walk(fn):
            if isinstance(sub, ast.Return) and sub.value is not None:
                vals |= f.iterate(sub.value) if iterate else f.ev(sub.value)
        out.append(vals)
    return out


def _walk_statements(f: _Function, body, visit):
    """Visit the statements a call can run: a branch decided by a known flag is pruned, and
    statements after a decided `return` are not run."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            decided = f.decide(stmt.test)
            branches = [stmt.body] if decided is True else [stmt.orelse] if decided is False else [stmt.body,
                                                                                                 stmt.orelse]
            for b in branches:
                _walk_statements(f, b, visit)
            if decided is not None and any(isinstance(s, ast.Return) for s in branches[0]):
                return
            continue
        visit(stmt)
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.AST) and not isinstance(
                    stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if field == "handlers":
                    for h in inner:
                        _walk_statements(f, h.body, visit)
                else:
                    _walk_statements(f, inner, visit)


def _statement_calls(stmt):
    """Calls in a statement, not descending into nested statement bodies (walked separately)."""
    parts = []
    for field, value in ast.iter_fields(stmt):
        if field in ("body", "orelse", "finalbody", "handlers"):
            continue
        if isinstance(value, list):
            parts += [v for v in value if isinstance(v, ast.AST)]
        elif isinstance(value, ast.AST):
            parts.append(value)
    for p in parts:
        for sub in ast.walk(p):
            if isinstance(sub, ast.Call):
                yield sub


def _scan(target, variants, found, where, depth=0, seen=None):
    """Record (clause, condition, where) for every check reachable from a call of `target`."""
    seen = set() if seen is None else seen
    fn = _parse(target[0])[1].get(target[1])
    if fn is None or depth > MAX_DEPTH:
        return
    for bindings in variants:
        key = (target, tuple(sorted((k, tuple(sorted(v, key=repr))) for k, v in bindings.items())))
        if key in seen:
            continue
        seen.add(key)
        f = _Function(target[0], fn, bindings)

        def visit(stmt, f=f):
            for call in _statement_calls(stmt):
                callee = _callee(f.mod, call.func)
                if callee is None:
                    continue
                if callee == SINK:
                    for v in f.call_bindings(call, callee):
                        found.add((next(iter(v.get("clause", {WILD}))), next(iter(v.get("condition", {WILD}))),
                                   where))
                    continue
                _scan(callee, f.call_bindings(call, callee), found, where, depth + 1, seen)

        _walk_statements(f, fn.body, visit)


def _parametrized(fn: ast.FunctionDef, mod: str):
    """Bindings of a test's parameters from its pytest.mark.parametrize decorators."""
    bound = {}
    helper = _Function(mod, fn, {})
    for dec in fn.decorator_list:
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr == "parametrize"
                and len(dec.args) >= 2):
            continue
        names = dec.args[0].value if isinstance(dec.args[0], ast.Constant) else None
        if not isinstance(names, str):
            continue
        names = [n.strip() for n in names.split(",")]
        values = dec.args[1]
        rows = values.elts if isinstance(values, (ast.List, ast.Tuple)) else []
        for i, name in enumerate(names):
            vals = set()
            for row in rows:
                if isinstance(row, ast.Call) and row.args:  # pytest.param(...)
                    row = row.args[0] if len(names) == 1 else ast.Tuple(elts=row.args)
                if len(names) == 1:
                    vals |= helper.ev(row)
                elif isinstance(row, (ast.Tuple, ast.List)) and len(row.elts) == len(names):
                    vals |= helper.ev(row.elts[i])
                else:
                    vals.add(WILD)
            bound[name] = vals or {WILD}
    return bound


def _clause_marks(nodes):
    """Clause ids in the pytest.mark.clause(...) calls within `nodes`."""
    out = set()
    for node in nodes:
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "clause"
                    and isinstance(sub.func.value, ast.Attribute) and sub.func.value.attr == "mark"):
                out |= {a.value for a in sub.args if isinstance(a, ast.Constant)}
    return out


@functools.lru_cache(maxsize=1)
def used_conditions():
    """{(clause, condition, 'file::test')} for every check every test can reach."""
    found = set()
    for path in sorted(PROPERTIES.glob("test_*.py")):
        mod = _module_name(path)
        tree, functions, _ = _parse(mod)
        module_marks = _clause_marks([n for n in tree.body if not isinstance(n, (ast.FunctionDef,
                                                                                 ast.AsyncFunctionDef))])
        marks_of_tests = set()
        for name, fn in functions.items():
            if name.startswith("test_"):
                bound = _parametrized(fn, mod)
                bound["__marks__"] = (_clause_marks(fn.decorator_list) | module_marks) or {WILD}
                marks_of_tests |= bound["__marks__"]
                _scan((mod, name), [bound], found, f"{path.name}::{name}")
        for name in functions:  # a state machine's methods, with the clauses of the module's tests
            if "." in name:
                _scan((mod, name), [{"__marks__": marks_of_tests or {WILD}}], found, f"{path.name}::{name}")
    return found


def _matches(condition: str, listed) -> list[str]:
    if WILD in condition:
        return [c for c in listed if fnmatch.fnmatchcase(c, condition)]
    return [c for c in listed if c == condition]


# ------------------------------------------------------------------ the tests
def test_scan_sees_the_known_helpers():
    """The scan itself: the helpers of dropnorm/suite/checks.py and computed labels resolve."""
    pairs = {(c, k) for c, k, _ in used_conditions()}
    assert ("BN-DTYPE-01", "dtype") in pairs            # assert_dtype
    assert ("DO-TRAIN-01", "scale") in pairs            # assert_inverted_dropout
    assert ("DO-TRAIN-01", "whole-channel") not in pairs  # channelwise=False prunes that check
    assert ("BN-EVAL-03", "running_mean-unchanged") in pairs  # f-string over a literal loop
    assert ("BN-API-01", "out-of-range") in pairs       # parametrize value through a helper
    assert ("BN-API-02", "out-of-range") not in pairs   # call sites stay apart
    assert ("BN-LAYOUT-01", "output") in pairs          # a clause chosen by a conditional expression
    assert ("BN-TRAIN-02", "running-buffers") in pairs  # names unpacked from one loop vary together
    assert ("BN-TRAIN-01", "running-buffers") not in pairs


def test_every_check_resolves_to_a_clause():
    unresolved = sorted({(k, w) for c, k, w in used_conditions() if c == WILD or c not in spec.clauses()})
    assert not unresolved, f"checks whose clause the scan cannot resolve to a known clause: {unresolved}"


def test_every_condition_used_is_listed_under_its_clause():
    known = spec.clauses()
    missing = {}
    for clause, condition, where in sorted(used_conditions()):
        if clause not in known or condition == WILD:
            continue
        if not _matches(condition, known[clause].conditions):
            missing.setdefault(clause, set()).add(condition)
    assert not missing, ("conditions the tests check but spec/clauses.toml does not list under the clause: "
                         + "; ".join(f"{c}: {sorted(v)}" for c, v in sorted(missing.items())))


def test_every_listed_condition_is_used():
    known = spec.clauses()
    used = {}
    for clause, condition, _ in used_conditions():
        if clause in known:
            used.setdefault(clause, set()).update(_matches(condition, known[clause].conditions))
    unused = {cid: sorted(set(c.conditions) - used.get(cid, set())) for cid, c in known.items()}
    unused = {k: v for k, v in unused.items() if v}
    assert not unused, "conditions listed in spec/clauses.toml that no test checks: " + "; ".join(
        f"{c}: {v}" for c, v in sorted(unused.items()))


def test_every_clause_lists_its_conditions():
    empty = sorted(cid for cid, c in spec.clauses().items() if not c.conditions)
    assert not empty, f"clauses with no conditions listed: {empty}"


def _defect_clauses():
    out = {}
    for path in sorted((ROOT / "dropnorm" / "zoo" / "defects").glob("*.py")):
        if path.name.startswith("_"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEFECT" for t in node.targets)
                    and isinstance(node.value, ast.Dict)):
                for k, v in zip(node.value.keys, node.value.values):
                    if isinstance(k, ast.Constant) and k.value == "clause" and isinstance(v, ast.Constant):
                        out.setdefault(v.value, []).append(path.name)
    return out


def test_every_clause_has_a_defect_or_a_reason():
    defects = _defect_clauses()
    unknown = sorted(set(defects) - set(spec.clauses()))
    assert not unknown, f"defects cite unknown clauses: {unknown}"
    without = sorted(set(spec.clauses()) - set(defects) - set(NO_DEFECT))
    assert not without, f"clauses without a defect in dropnorm/zoo/defects/ and not in NO_DEFECT: {without}"
    stale = sorted(set(NO_DEFECT) & set(defects))
    assert not stale, f"clauses in NO_DEFECT that now have a defect (remove them from NO_DEFECT): {stale}"
    assert set(NO_DEFECT) <= set(spec.clauses()), sorted(set(NO_DEFECT) - set(spec.clauses()))
