"""Which (clause, condition) pairs each property test can check, found statically (AST).

The scan starts at every test function of a folder of property tests (test_*.py) and follows calls down
to the one place a clause can fail, the sink (dropnorm.suite.checks.check(ok, clause, condition, ...)):
through the helpers of dropnorm/suite/checks.py (assert_close, assert_shape -> "shape", assert_dtype ->
"dtype", assert_inverted_dropout -> "scale", "whole-channel", ...) and the tests' own helpers, with the
literal arguments of each call site, the values of pytest.mark.parametrize, the clauses of
pytest.mark.clause (read back through request.node.get_closest_marker), literal for-loops, conditional
expressions and f-strings. A branch decided by a known flag is pruned, so a check that a call site
cannot reach is not counted. A part the scan cannot resolve (a layout drawn by hypothesis) becomes the
wildcard WILD ("*"): "dx-*" stands for the listed conditions it matches (`matches`).

Not a test module: tests/test_spec_meta.py uses it to hold spec/clauses.toml to what the tests check,
and tests/test_clause_scan.py tests it on small source trees of its own. It cites no spec clause.
"""
from __future__ import annotations

import ast
import fnmatch
import functools
import itertools
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROPERTIES = ROOT / "dropnorm" / "properties"   # the property suite
WILD = "*"
SINK = ("dropnorm.suite.checks", "check")   # check(ok, clause, condition, message, ...)
MAX_VARIANTS = 64                      # call-site bindings expanded per call
MAX_DEPTH = 8                          # calls followed below a test


@functools.lru_cache(maxsize=1)
def used_conditions() -> frozenset:
    """{(clause, condition, 'file::test')} for every check every test of the property suite can reach."""
    return frozenset(Scan(ROOT).used_conditions(PROPERTIES))


def matches(condition: str, listed) -> list[str]:
    """The conditions of `listed` that a scanned condition stands for: itself, or those its wildcards match."""
    if WILD in condition:
        return [c for c in listed if fnmatch.fnmatchcase(c, condition)]
    return [c for c in listed if c == condition]


class Scan:
    """The scan of one source tree: modules named `package.module` resolve to files below `root`; only calls
    into `packages` are followed; `sink` is the (module, function) a check goes through, called as
    sink(ok, clause, condition, ...). Parsed modules are cached per Scan."""

    def __init__(self, root: pathlib.Path, packages=("dropnorm", "tests"), sink=SINK):
        self.root, self.packages, self.sink = pathlib.Path(root), tuple(packages), tuple(sink)
        self._parsed = {}

    # ------------------------------------------------------------------ modules and call targets
    def module_name(self, path: pathlib.Path) -> str:
        return ".".join(pathlib.Path(path).relative_to(self.root).with_suffix("").parts)

    def exists(self, modname: str) -> bool:
        base = self.root.joinpath(*modname.split("."))
        return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()

    def parse(self, modname: str):
        """(tree, {function name: node}, {local name: (module, attribute or None)}) of a module, or None."""
        if modname not in self._parsed:
            self._parsed[modname] = self._parse(modname)
        return self._parsed[modname]

    def _parse(self, modname: str):
        path = self.root.joinpath(*modname.split(".")).with_suffix(".py")
        if not path.is_file():
            path = self.root.joinpath(*modname.split("."), "__init__.py")
        if not path.is_file():
            return None
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        # the methods of a hypothesis state machine (its rules run the checks), as "Class.method": never a call
        # target by name, scanned as roots by used_conditions
        for cls in tree.body:
            if isinstance(cls, ast.ClassDef) and any(getattr(b, "id", None) == "RuleBasedStateMachine"
                                                     for b in cls.bases):
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
                    if self.exists(sub):  # `from package import module`
                        aliases[a.asname or a.name] = (sub, None)
                    else:
                        aliases[a.asname or a.name] = (node.module, a.name)
        return tree, functions, aliases

    def project(self, modname: str) -> bool:
        return modname.split(".")[0] in self.packages

    def callee(self, modname: str, func: ast.expr):
        """(module, function name) of a call to a project function, else None."""
        _, functions, aliases = self.parse(modname)
        if isinstance(func, ast.Name):
            if func.id in functions:
                return modname, func.id
            target = aliases.get(func.id)
            if target and target[1] and self.project(target[0]) and self.parse(target[0]):
                return target[0], target[1]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = aliases.get(func.value.id)
            if target and target[1] is None and self.project(target[0]) and self.parse(target[0]):
                return target[0], func.attr
        return None

    def function(self, target):
        """The function node of a (module, name) target, or None."""
        return self.parse(target[0])[1].get(target[1])

    # ------------------------------------------------------------------ following calls
    def returns(self, target, variants, iterate=False):
        """Per variant, the values the function returns (or, iterate=True, those its result yields)."""
        fn = self.function(target)
        out = []
        for bindings in variants:
            f = _Function(self, target[0], fn, bindings)
            vals = set()
            for sub in ast.walk(fn):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    vals |= f.iterate(sub.value) if iterate else f.ev(sub.value)
            out.append(vals)
        return out

    def scan(self, target, variants, found, where, depth=0, seen=None):
        """Record (clause, condition, where) for every check reachable from a call of `target`."""
        seen = set() if seen is None else seen
        fn = self.function(target)
        if fn is None or depth > MAX_DEPTH:
            return
        for bindings in variants:
            key = (target, tuple(sorted((k, tuple(sorted(v, key=repr))) for k, v in bindings.items())))
            if key in seen:
                continue
            seen.add(key)
            f = _Function(self, target[0], fn, bindings)

            def visit(stmt, f=f):
                for call in _statement_calls(stmt):
                    callee = self.callee(f.mod, call.func)
                    if callee is None:
                        continue
                    if callee == self.sink:
                        for v in f.call_bindings(call, callee):
                            found.add((next(iter(v.get("clause", {WILD}))), next(iter(v.get("condition", {WILD}))),
                                       where))
                        continue
                    self.scan(callee, f.call_bindings(call, callee), found, where, depth + 1, seen)

            _walk_statements(f, fn.body, visit)

    def parametrized(self, fn: ast.FunctionDef, mod: str):
        """Bindings of a test's parameters from its pytest.mark.parametrize decorators."""
        bound = {}
        helper = _Function(self, mod, fn, {})
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                    and dec.func.attr == "parametrize" and len(dec.args) >= 2):
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

    def used_conditions(self, tests: pathlib.Path) -> set:
        """{(clause, condition, 'file::test')} for every check every test of tests/test_*.py can reach."""
        found = set()
        for path in sorted(pathlib.Path(tests).glob("test_*.py")):
            mod = self.module_name(path)
            tree, functions, _ = self.parse(mod)
            module_marks = _clause_marks([n for n in tree.body if not isinstance(n, (ast.FunctionDef,
                                                                                     ast.AsyncFunctionDef))])
            marks_of_tests = set()
            for name, fn in functions.items():
                if name.startswith("test_"):
                    bound = self.parametrized(fn, mod)
                    bound["__marks__"] = (_clause_marks(fn.decorator_list) | module_marks) or {WILD}
                    marks_of_tests |= bound["__marks__"]
                    self.scan((mod, name), [bound], found, f"{path.name}::{name}")
            for name in functions:  # a state machine's methods, with the clauses of the module's tests
                if "." in name:
                    self.scan((mod, name), [{"__marks__": marks_of_tests or {WILD}}], found, f"{path.name}::{name}")
        return found


class _Function:
    """Evaluates the strings an expression of one function can take, given its parameters' bindings."""

    def __init__(self, scan: Scan, modname, node, bindings):
        self.scan, self.mod, self.node, self.bindings = scan, modname, node, bindings
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
                    out |= _elements(self.ev(src[2]), src[1])
                elif isinstance(src, tuple) and src[0] == "unpack-iter":
                    out |= _elements(self.iterate(src[2]), src[1])
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
            target = self.scan.callee(self.mod, node.func)
            if target:
                return self.returned(node, target, iterate=True)
            if (isinstance(node.func, ast.Attribute) and node.func.attr in ("items", "keys")
                    and isinstance(node.func.value, ast.Dict)):  # {"label": ...}.items(): the labels
                return {(k, WILD) for k in self.iterate(ast.Tuple(elts=node.func.value.keys))}
        if isinstance(node, ast.Dict):
            return self.iterate(ast.Tuple(elts=node.keys))
        return {WILD}

    def ev(self, node):
        """The values an expression can take."""
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
            target = self.scan.callee(self.mod, node.func)
            if target:
                return self.returned(node, target)
        return {WILD}

    def returned(self, call, target, iterate=False):
        """The values a call of a project function returns (iterate=True: those its result yields), over every
        binding of its call site."""
        return set().union(*self.scan.returns(target, self.call_bindings(call, target), iterate=iterate)) or {WILD}

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
        fn = self.scan.function(target)
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
        if "__marks__" in self.bindings:
            # the test's clause marks reach its helpers whole (a helper may read get_closest_marker too); kept
            # out of the product above, so that they neither split nor use up the MAX_VARIANTS variants
            for v in variants:
                v["__marks__"] = self.bindings["__marks__"]
        return variants


def _elements(values, i: int) -> set:
    """Element i of each tuple among `values` (a name unpacked from them); WILD for anything else."""
    return {v[i] if isinstance(v, tuple) and len(v) > i else WILD for v in values}


def _stars(s: str) -> str:
    while WILD + WILD in s:
        s = s.replace(WILD + WILD, WILD)
    return s


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


def _clause_marks(nodes):
    """Clause ids in the pytest.mark.clause(...) calls within `nodes`."""
    out = set()
    for node in nodes:
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "clause"
                    and isinstance(sub.func.value, ast.Attribute) and sub.func.value.attr == "mark"):
                out |= {a.value for a in sub.args if isinstance(a, ast.Constant)}
    return out
