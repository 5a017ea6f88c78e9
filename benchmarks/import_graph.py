"""The import graph of the dropnorm package: modules, imports, cycles and layers.

    python benchmarks/import_graph.py [--root DIR] [--package-level]

Reads every module under DIR/dropnorm (and DIR/reference, where an old checkout has it) with ast,
counts each import of another module of the package (top-level and inside functions alike: a lazy
import is still a dependency), and reports the strongly connected components of more than one
module (cycles) and the number of layers (the longest chain of imports, cycles condensed). With
--package-level, modules are grouped by their package under dropnorm/ (run, suite, spec, ...), which
is the layering the layout is meant to show: a package that imports a higher one is an upward import.
Tests (test_*.py), the zoo's defect and variant modules and the property tests are left out: they
are the suite's content, not its architecture.
"""
from __future__ import annotations

import argparse
import ast
import json
import pathlib
import sys


def modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    out = {}
    for top in ("dropnorm", "reference"):
        for path in (root / top).rglob("*.py") if (root / top).is_dir() else ():
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1].startswith("test_") or "defects" in parts or "variants" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import submodule` depends on the submodule (its package face is a formality)
            targets = [s for s in subs if s in known] or [base]
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                found.add(t)
    return found


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def layers(graph: dict[str, set[str]], comps: list[list[str]]) -> int:
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    dag = {i: {comp_of[w] for m in c for w in graph[m]} - {i} for i, c in enumerate(comps)}
    depth: dict[int, int] = {}

    def d(i):
        if i not in depth:
            depth[i] = 1 + max((d(j) for j in dag[i]), default=0)
        return depth[i]
    return max((d(i) for i in dag), default=0)


def group(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "dropnorm" and len(parts) > 2 else name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1]))
    ap.add_argument("--package-level", action="store_true")
    args = ap.parse_args(argv)
    mods = modules(pathlib.Path(args.root))
    graph = {m: imports(m, p, set(mods)) for m, p in mods.items()}
    if args.package_level:
        g2: dict[str, set[str]] = {}
        for m, deps in graph.items():
            g2.setdefault(group(m), set()).update(group(d) for d in deps)
        graph = {m: deps - {m} for m, deps in g2.items()}
    comps = sccs(graph)
    cycles = [c for c in comps if len(c) > 1]
    result = {"modules": len(graph), "imports": sum(len(v) for v in graph.values()),
              "layers": layers(graph, comps), "cycles": cycles}
    if args.package_level:
        result["packages"] = {m: sorted(deps) for m, deps in sorted(graph.items())}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
